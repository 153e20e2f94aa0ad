import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import * as oidc from 'openid-client';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Principal } from '../Principal.ts';
import { authFailure } from './authFailure.ts';
import { bearerToken, type Authenticator } from './Authenticator.ts';
import type { OidcSettings } from './authnSettings.ts';
import { keycloakPrincipal } from './keycloakPrincipal.ts';

// Asymmetric only: a symmetric algorithm would let anyone holding the public JWKS mint tokens (alg confusion).
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Verifies bearer JWT access tokens from an OpenID Provider (Keycloak): the issuer's discovery document (openid-client)
 * gives the JWKS URL; jose verifies signature, `iss`, `aud`, `exp`/`nbf` with the configured skew. Keys are cached
 * for `jwksCacheMs` and fetched again when a token names an unknown `kid` (a rotated key), at most once per
 * `jwksCooldownMs`. Discovery is retried on the next request when the issuer was unreachable at start, so a host can
 * start while its identity provider is down (requests then get 503 HOST_ERR_AUTH_PROVIDER_UNAVAILABLE).
 */
export class OidcAuthenticator implements Authenticator {
  readonly mode = 'oidc';
  readonly #settings: OidcSettings;
  readonly #log: Logger | undefined;
  #keys: Promise<JWTVerifyGetKey> | undefined;

  constructor(settings: OidcSettings, deps: { logger?: Logger } = {}) {
    if (!settings.allowInsecureHttp && !settings.issuer.startsWith('https://')) {
      throw hostError('HOST_ERR_AUTH_CONFIG_INVALID', `the issuer must be an https:// URL (got ${settings.issuer}); allowInsecureHttp is for tests only`, { details: { issuer: settings.issuer } });
    }
    this.#settings = settings;
    this.#log = deps.logger?.child({ component: 'authn' });
  }

  async start(): Promise<void> {
    try {
      await this.#jwks();
    } catch (error) {
      this.#log?.warn({ issuer: this.#settings.issuer, code: (error as WorkerManagerError).code }, 'identity provider unreachable at start; discovery is retried on the next request');
    }
  }

  async stop(): Promise<void> {
    this.#keys = undefined;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    if (token === undefined) throw authFailure('missing', 'no bearer token: send Authorization: Bearer <access token>');
    if (token === null || !JWT_SHAPE.test(token)) throw authFailure('malformed', 'the Authorization header is not a bearer JWT');
    const keys = await this.#jwks();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.#settings.issuer,
        audience: this.#settings.audience,
        clockTolerance: this.#settings.clockSkewSec,
        algorithms: ALGORITHMS,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      throw this.#failure(error);
    }
    const granted = new Set(typeof payload['scope'] === 'string' ? payload['scope'].split(' ') : []);
    const missing = this.#settings.requiredScopes.filter((s) => !granted.has(s));
    if (missing.length > 0) throw authFailure('scope', `the token lacks required scope(s): ${missing.join(', ')}`, { missingScopes: missing });
    return keycloakPrincipal(payload, this.#settings.tenantClaim);
  }

  /** The JWKS getter, from discovery; a failed discovery is forgotten so the next request tries again. */
  #jwks(): Promise<JWTVerifyGetKey> {
    this.#keys ??= this.#discover().catch((error: unknown) => {
      this.#keys = undefined;
      throw error;
    });
    return this.#keys;
  }

  async #discover(): Promise<JWTVerifyGetKey> {
    const { issuer, audience, discoveryTimeoutMs, jwksCacheMs, jwksCooldownMs, allowInsecureHttp } = this.#settings;
    let jwksUri: string | undefined;
    try {
      // The client id is irrelevant to a resource server; discovery only needs one to build its Configuration.
      const clientId = Array.isArray(audience) ? (audience[0] ?? 'worker-manager') : audience;
      const config = await oidc.discovery(new URL(issuer), clientId, undefined, undefined, {
        timeout: Math.ceil(discoveryTimeoutMs / 1000),
        ...(allowInsecureHttp ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
      jwksUri = config.serverMetadata().jwks_uri;
    } catch (error) {
      throw hostError('HOST_ERR_AUTH_PROVIDER_UNAVAILABLE', `OIDC discovery of ${issuer} failed: ${(error as Error).message}`, { cause: error, details: { issuer } });
    }
    if (jwksUri === undefined) throw hostError('HOST_ERR_AUTH_PROVIDER_UNAVAILABLE', `the discovery document of ${issuer} has no jwks_uri`, { details: { issuer } });
    this.#log?.info({ issuer, jwksUri }, 'identity provider discovered');
    return createRemoteJWKSet(new URL(jwksUri), { cacheMaxAge: jwksCacheMs, cooldownDuration: jwksCooldownMs, timeoutDuration: discoveryTimeoutMs });
  }

  #failure(error: unknown): WorkerManagerError {
    if (error instanceof joseErrors.JWTExpired) return authFailure('expired', 'the token has expired');
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') return authFailure('not_yet_valid', 'the token is not valid yet (nbf)');
      if (error.claim === 'iss') return authFailure('issuer', 'the token was issued by another issuer');
      if (error.claim === 'aud') return authFailure('audience', 'the token is not meant for this service (aud)');
      return authFailure('claims', `the token's ${error.claim} claim is invalid`, { claim: error.claim });
    }
    if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JOSEAlgNotAllowed || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
      return authFailure('signature', 'the token signature does not verify against the issuer\'s keys');
    }
    if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid || error instanceof joseErrors.JOSENotSupported) {
      return authFailure('malformed', 'the token is not a well-formed signed JWT');
    }
    // Anything else happened while fetching keys (timeout, connection refused, a JWKS that is not one).
    const issuer = this.#settings.issuer;
    return hostError('HOST_ERR_AUTH_PROVIDER_UNAVAILABLE', `the signing keys of ${issuer} could not be fetched: ${(error as Error).message}`, { cause: error, details: { issuer } });
  }
}
