import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import Provider, { type ProviderToken } from 'oidc-provider';
import * as oidc from 'openid-client';

/** Lifetime of the tokens the provider issues and `mint` signs, in seconds: an hour, longer than any test file runs. */
const TOKEN_TTL_S = 3_600;

/** A service account of the test realm (a Keycloak confidential client with service accounts enabled). */
export interface TestClient {
  clientId: string;
  secret: string;
  /** Scopes the client may ask for (Keycloak: its default and optional client scopes). */
  scopes: string[];
  tenant?: string;
  realmRoles?: string[];
  /** Client roles by client id, as Keycloak puts them in `resource_access`. */
  clientRoles?: Record<string, string[]>;
}

/** A running identity provider shaped like a Keycloak realm, and ways to get good and bad tokens from it. */
export interface TestIdentityProvider {
  /** `http://127.0.0.1:<port>/realms/<realm>`, as Keycloak names a realm issuer. */
  readonly issuer: string;
  /** The `aud` of access tokens for worker-manager (resource `urn:worker-manager`). */
  readonly audience: string;
  /** Scopes worker-manager tokens can carry. */
  readonly scopes: readonly string[];
  /**
   * A real access token from the token endpoint (client credentials grant, through openid-client). `resource`
   * `urn:other-api` gives a token for another audience.
   */
  token(clientId: string, options?: { scope?: string; resource?: string }): Promise<string>;
  /**
   * A token signed outside the token endpoint, for the cases a real provider will not issue: `key: 'provider'` signs
   * with the realm's current key (so only the claims are wrong: expired, not yet valid, other issuer), `'forged'`
   * with a key of its own (same `kid` as the realm's, unless `kid` is given). Claims default to a valid token of
   * `ci-operator`; `exp`/`nbf`/`iat` are epoch seconds.
   */
  mint(claims?: Record<string, unknown>, options?: { key?: 'provider' | 'forged'; kid?: string }): Promise<string>;
  /** Replaces the realm's signing key (the old one stays published), as a Keycloak key rotation does. */
  rotateKeys(): Promise<void>;
  /** Number of JWKS requests served (to see a verifier refetch keys). */
  readonly jwksRequests: number;
  /** Registers another client (Keycloak: a client created through the admin API); the realm is rebuilt with it. */
  addClient(client: TestClient): void;
  close(): Promise<void>;
}

/** Options of {@link startTestIdentityProvider}. */
export interface TestIdentityProviderOptions {
  realm?: string;
  clients?: TestClient[];
  audience?: string;
  /** Lifetime of issued access tokens in seconds; default an hour. Short lifetimes test token refresh. */
  tokenTtlSeconds?: number;
  /**
   * Runs on every build of the provider (start, key rotation, new client): Koa middleware through `provider.use`, or
   * replacing how a client secret is compared (`provider.Client.prototype.compareClientSecret`), as a Keycloak double
   * with rotated secrets needs.
   */
  configure?: (provider: Provider) => void;
  /**
   * Sees every request first, on the realm's origin; returns true when it answered it (Keycloak's admin API beside the
   * realm, or an injected fault). Requests it leaves go to the realm as before.
   */
  intercept?: (req: IncomingMessage, res: http.ServerResponse) => boolean;
}

/** The clients of the default test realm (seed 000 table 12 service accounts). */
export const DEFAULT_CLIENTS: TestClient[] = [
  { clientId: 'ci-operator', secret: 'operator-secret', scopes: ['wm:api'], tenant: 'team-a', realmRoles: ['ci-operator'], clientRoles: { 'worker-manager': ['operator'] } },
  { clientId: 'ci-agent', secret: 'agent-secret', scopes: ['wm:api'], tenant: 'team-b', realmRoles: ['ci-agent'] },
  { clientId: 'ci-reader', secret: 'reader-secret', scopes: ['wm:read'], tenant: 'team-a', realmRoles: [] },
];

type SigningKey = { jwk: JWK; privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'] };

async function newKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
  return { jwk, privateKey };
}

/**
 * Starts `oidc-provider` configured like a Keycloak realm on 127.0.0.1, port 0: client credentials grant; JWT access
 * tokens through resource indicators (audience `worker-manager`) with Keycloak-shaped claims (`azp`, `scope`,
 * `realm_access`, `resource_access`, `preferred_username: service-account-<client>`, and the `tenant` attribute); the
 * realm's endpoints under `/realms/<realm>/protocol/openid-connect/` as Keycloak has them.
 */
export async function startTestIdentityProvider(options: TestIdentityProviderOptions = {}): Promise<TestIdentityProvider> {
  const realm = options.realm ?? 'wm';
  const clients = [...(options.clients ?? DEFAULT_CLIENTS)];
  const tokenTtl = options.tokenTtlSeconds ?? TOKEN_TTL_S;
  const audience = options.audience ?? 'worker-manager';
  const scopes = [...new Set(clients.flatMap((c) => c.scopes))];
  let keys: SigningKey[] = [await newKey()];
  let provider: Provider | undefined;
  let jwksRequests = 0;
  const prefix = `/realms/${realm}`;

  const server = http.createServer((req, res) => {
    if (options.intercept?.(req, res) === true) return;
    const url = req.url ?? '/';
    if (provider === undefined || !(url === prefix || url.startsWith(`${prefix}/`))) {
      res.writeHead(404).end();
      return;
    }
    if (url.startsWith(`${prefix}/protocol/openid-connect/certs`)) jwksRequests += 1;
    // Mounted like express's app.use(prefix, callback): the provider sees the path below its mount point.
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    req.url = url.slice(prefix.length) || '/';
    provider.callback()(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${prefix}`;

  const build = (): Provider => {
    const byId = new Map(clients.map((c) => [c.clientId, c]));
    // Tokens outlive a test file on a loaded machine (a file can take minutes): one that expired mid-test would turn a
    // passing check into WM_ERR_AUTHENTICATION. Expiry itself is tested with explicit `exp` claims.
    const p = new Provider(issuer, {
      clients: clients.map((c) => ({
        client_id: c.clientId, client_secret: c.secret, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: c.scopes.join(' '),
      })),
      jwks: { keys: keys.map((k) => k.jwk) },
      cookies: { keys: ['test-cookie-key'] },
      ttl: { ClientCredentials: tokenTtl },
      scopes: ['openid', ...scopes],
      routes: {
        token: '/protocol/openid-connect/token',
        jwks: '/protocol/openid-connect/certs',
        introspection: '/protocol/openid-connect/token/introspect',
        revocation: '/protocol/openid-connect/revoke',
        userinfo: '/protocol/openid-connect/userinfo',
        authorization: '/protocol/openid-connect/auth',
        end_session: '/protocol/openid-connect/logout',
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => 'urn:worker-manager',
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => {
            if (resource === 'urn:worker-manager') return { scope: scopes.join(' '), audience, accessTokenTTL: tokenTtl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
            if (resource === 'urn:other-api') return { scope: scopes.join(' '), audience: 'other-api', accessTokenTTL: tokenTtl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
            throw new Error(`unknown resource ${resource}`);
          },
        },
      },
      extraTokenClaims: (_ctx: unknown, token: ProviderToken) => {
        const client = token.clientId === undefined ? undefined : byId.get(token.clientId);
        if (client === undefined) return {};
        return {
          azp: client.clientId,
          preferred_username: `service-account-${client.clientId}`,
          realm_access: { roles: client.realmRoles ?? [] },
          resource_access: Object.fromEntries(Object.entries(client.clientRoles ?? {}).map(([k, roles]) => [k, { roles }])),
          ...(client.tenant === undefined ? {} : { tenant: client.tenant }),
        };
      },
    });
    p.on('server_error', (_ctx, error) => console.error('test identity provider error', error));
    options.configure?.(p);
    return p;
  };
  provider = build();

  const current = (): SigningKey => keys[0] ?? assertNever();
  return {
    issuer,
    audience,
    scopes,
    get jwksRequests() {
      return jwksRequests;
    },
    async token(clientId, tokenOptions = {}) {
      const client = clients.find((c) => c.clientId === clientId) ?? assertNever(`no client ${clientId}`);
      const config = await oidc.discovery(new URL(issuer), client.clientId, client.secret, undefined, { execute: [oidc.allowInsecureRequests] });
      const grant = await oidc.clientCredentialsGrant(config, {
        scope: tokenOptions.scope ?? client.scopes.join(' '),
        resource: tokenOptions.resource ?? 'urn:worker-manager',
      });
      return grant.access_token;
    },
    async mint(claims = {}, mintOptions = {}) {
      const now = Math.floor(Date.now() / 1000);
      const signer = mintOptions.key === 'forged' ? await newKey() : current();
      const kid = mintOptions.kid ?? current().jwk.kid ?? assertNever();
      const payload = {
        iss: issuer, aud: audience, sub: 'ci-operator', azp: 'ci-operator', client_id: 'ci-operator', scope: 'wm:api', tenant: 'team-a',
        realm_access: { roles: ['ci-operator'] }, iat: now, exp: now + TOKEN_TTL_S, jti: randomUUID(), ...claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(signer.privateKey);
    },
    async rotateKeys() {
      keys = [await newKey(), ...keys];
      provider = build();
    },
    addClient(client) {
      clients.push(client);
      provider = build();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function assertNever(message = 'unreachable'): never {
  throw new Error(message);
}
