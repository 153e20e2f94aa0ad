import * as oidc from 'openid-client';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { HttpFetch } from './agentFetch.ts';
import { grantError, statusError, transportError, type RequestSubject } from './keycloakError.ts';

/** A token from a client credentials grant: the value and when it expires (epoch ms), as the answer says. */
export interface Grant {
  accessToken: string;
  obtainedAt: number;
  /** Undefined when Keycloak sent no `expires_in` (then the token is never cached). */
  expiresAt: number | undefined;
}

/** Where and how the plugin reaches the realm's token endpoint. */
export interface TokenEndpointOptions {
  baseUrl: string;
  realm: string;
  requestTimeoutMs: number;
  allowHttp: boolean;
  /** How requests are sent: Node's fetch, or agentFetch through the egress proxy or with a private CA. */
  fetch: HttpFetch;
}

/**
 * The realm's token endpoint, through openid-client. The server metadata is built from the base URL and realm
 * (Keycloak's endpoints are fixed), so no discovery request is needed before the first grant.
 */
export class TokenEndpoint {
  readonly issuer: string;
  readonly #server: oidc.ServerMetadata;
  readonly #path: string;
  readonly #options: TokenEndpointOptions;

  constructor(options: TokenEndpointOptions) {
    this.#options = options;
    this.issuer = `${options.baseUrl}/realms/${encodeURIComponent(options.realm)}`;
    const tokenEndpoint = `${this.issuer}/protocol/openid-connect/token`;
    this.#server = { issuer: this.issuer, token_endpoint: tokenEndpoint };
    this.#path = new URL(tokenEndpoint).pathname;
  }

  /**
   * A client credentials grant for `clientId` with `secret`, sent in the form body (`client_secret_post`): Basic
   * authentication would need the secret form-encoded first, which older Keycloak releases did not decode. Throws coded
   * errors: see keycloakError.ts.
   */
  async grant(clientId: string, secret: string, options: { scope?: string | undefined; signal?: AbortSignal | undefined } = {}): Promise<Grant> {
    const subject: RequestSubject & { clientId: string } = { operation: `token grant for '${clientId}'`, path: this.#path, clientId };
    const config = new oidc.Configuration(this.#server, clientId, undefined, oidc.ClientSecretPost(secret));
    config.timeout = this.#options.requestTimeoutMs / 1_000;
    if (this.#options.allowHttp) oidc.allowInsecureRequests(config);
    const callSignal = options.signal;
    const send = this.#options.fetch;
    // The plugin's lifetime ends the request too, not only openid-client's own timeout.
    config[oidc.customFetch] = (url, init) => {
      const signal = callSignal === undefined ? init.signal : init.signal === undefined ? callSignal : AbortSignal.any([init.signal, callSignal]);
      return send(url, { ...init, ...(signal === undefined ? {} : { signal }) } as RequestInit);
    };
    const obtainedAt = Date.now();
    let answer: oidc.TokenEndpointResponse;
    try {
      answer = await oidc.clientCredentialsGrant(config, options.scope === undefined ? {} : { scope: options.scope });
    } catch (error) {
      throw this.#failure(error, subject);
    }
    const expiresIn = answer.expires_in;
    return {
      accessToken: answer.access_token,
      obtainedAt,
      expiresAt: typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn > 0 ? obtainedAt + expiresIn * 1_000 : undefined,
    };
  }

  #failure(error: unknown, subject: RequestSubject & { clientId: string }): WorkerManagerError {
    if (error instanceof WorkerManagerError) return error;
    if (error instanceof oidc.ResponseBodyError) return grantError(error.status, error.error, error.error_description, subject);
    if (error instanceof oidc.ClientError) {
      // A non-200 answer that is no OAuth error body (a proxy's 503 page): openid-client keeps the Response as cause.
      const response = error.cause;
      if (response instanceof Response) return statusError(response.status, undefined, subject);
    }
    const transport = transportError(error, subject, this.#options.requestTimeoutMs);
    if (transport !== undefined) return transport;
    const code = (error as { code?: unknown } | null)?.code;
    return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `Keycloak ${subject.operation}: the answer could not be used${typeof code === 'string' ? ` (${code})` : ''}`, {
      details: { ...subject, reason: 'bad-answer', ...(typeof code === 'string' ? { openidClientCode: code } : {}) },
    });
  }
}
