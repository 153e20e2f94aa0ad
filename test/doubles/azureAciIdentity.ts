import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** An app registration (service principal) the double's token endpoint knows. */
export interface AzureClient {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

interface IssuedToken {
  tenantId: string;
  clientId: string;
  scope: string;
  expiresAt: number;
}

/** What {@link TokenIssuer.verify} found in an `Authorization` header. */
export type BearerCheck = { ok: true; clientId: string; tenantId: string } | { ok: false; code: 'AuthenticationFailed' | 'InvalidAuthenticationToken' | 'ExpiredAuthenticationToken'; message: string };

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
};

/** The OAuth2 error body of the Microsoft identity platform (`error`, `error_description`, `error_codes`). */
const oauthError = (res: ServerResponse, status: number, error: string, description: string, code: number): void =>
  json(res, status, { error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: randomBytes(8).toString('hex') });

/**
 * The Microsoft identity platform endpoints MSAL (through @azure/identity's ClientSecretCredential) calls for the
 * client-credentials flow against a custom `authorityHost` with instance discovery disabled: the tenant's OpenID
 * configuration (`GET /{tenant}/v2.0/.well-known/openid-configuration`), then the token endpoint
 * (`POST /{tenant}/oauth2/v2.0/token`, form-encoded `grant_type=client_credentials`, `client_id`, `client_secret`,
 * `scope`). Tokens are opaque random strings the ARM side checks against this issuer, with an expiry.
 */
export class TokenIssuer {
  readonly #clients: AzureClient[];
  readonly #tokens = new Map<string, IssuedToken>();
  #ttlSeconds: number;
  /** Number of tokens issued, for tests that check caching and refresh. */
  issued = 0;

  constructor(clients: AzureClient[], ttlSeconds: number) {
    this.#clients = clients;
    this.#ttlSeconds = ttlSeconds;
  }

  set ttlSeconds(seconds: number) {
    this.#ttlSeconds = seconds;
  }

  /** Answers the request if it is an identity endpoint; false otherwise. */
  handle(method: string, url: URL, body: string, res: ServerResponse): boolean {
    const config = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
    if (method === 'GET' && config !== null) {
      const tenant = config[1]!;
      const base = `${url.protocol}//${url.host}/${tenant}`;
      json(res, 200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        jwks_uri: `${url.protocol}//${url.host}/${tenant}/discovery/v2.0/keys`,
        issuer: `${url.protocol}//${url.host}/${tenant}/v2.0`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        tenant_region_scope: null,
      });
      return true;
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
    if (token === null) return false;
    if (method !== 'POST') {
      oauthError(res, 405, 'invalid_request', 'The request method must be POST.', 900561);
      return true;
    }
    const tenantId = token[1]!;
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'client_credentials') {
      oauthError(res, 400, 'unsupported_grant_type', 'The provided value for the input parameter grant_type is not valid.', 70003);
      return true;
    }
    const scope = form.get('scope') ?? '';
    if (!scope.split(' ').some((s) => s.endsWith('/.default'))) {
      oauthError(res, 400, 'invalid_scope', 'The scope provided is not valid: the client credentials flow needs a /.default scope.', 1002012);
      return true;
    }
    const client = this.#clients.find((c) => c.tenantId === tenantId && c.clientId === form.get('client_id'));
    if (client === undefined) {
      oauthError(res, 400, 'unauthorized_client', `Application with identifier '${form.get('client_id') ?? ''}' was not found in the directory '${tenantId}'.`, 700016);
      return true;
    }
    if (form.get('client_secret') !== client.clientSecret) {
      oauthError(res, 401, 'invalid_client', `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`, 7000215);
      return true;
    }
    const accessToken = randomBytes(32).toString('base64url');
    this.#tokens.set(accessToken, { tenantId, clientId: client.clientId, scope, expiresAt: Date.now() + this.#ttlSeconds * 1_000 });
    this.issued += 1;
    json(res, 200, { token_type: 'Bearer', expires_in: this.#ttlSeconds, ext_expires_in: this.#ttlSeconds, access_token: accessToken }, { 'cache-control': 'no-store, no-cache' });
    return true;
  }

  /** Checks an `Authorization` header as ARM does: a bearer token this issuer made, not expired. */
  verify(header: string | undefined): BearerCheck {
    if (header === undefined || header === '') return { ok: false, code: 'AuthenticationFailed', message: "Authentication failed. The 'Authorization' header is missing." };
    const match = /^Bearer (\S+)$/.exec(header);
    if (match === null) return { ok: false, code: 'AuthenticationFailed', message: "Authentication failed. The 'Authorization' header is provided in an invalid format." };
    const token = this.#tokens.get(match[1]!);
    if (token === undefined) return { ok: false, code: 'InvalidAuthenticationToken', message: 'The access token is invalid.' };
    if (token.expiresAt <= Date.now()) return { ok: false, code: 'ExpiredAuthenticationToken', message: "The access token expiry UTC time is earlier than current UTC time." };
    return { ok: true, clientId: token.clientId, tenantId: token.tenantId };
  }
}
