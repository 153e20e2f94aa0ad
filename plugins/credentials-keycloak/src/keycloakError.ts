import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** What a failed request was, for messages and details: never a token, a secret or a request body. */
export interface RequestSubject {
  /** What the plugin was doing, e.g. `token grant for ci-runner` or `regenerate client secret`. */
  operation: string;
  /** The URL path called (it holds the realm and a client uuid, never a value). */
  path: string;
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** The errno-like code of a failed fetch (undici puts the socket error in `cause`). */
function transportCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'OAUTH_RESPONSE_BODY_ERROR') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A request that got no HTTP answer: timeout, refused or dropped connection, TLS failure. Undefined when `error` is
 * not one. The original error is never kept as `cause`: openid-client errors can hold the request.
 */
export function transportError(error: unknown, subject: RequestSubject, timeoutMs: number): WorkerManagerError | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  const oauthCode = (error as { code?: unknown } | null)?.code;
  // openid-client wraps its own deadline and an aborted signal as OAUTH_TIMEOUT and OAUTH_ABORT.
  if (name === 'TimeoutError' || name === 'AbortError' || oauthCode === 'OAUTH_TIMEOUT' || oauthCode === 'OAUTH_ABORT') {
    return new WorkerManagerError('WM_ERR_TIMEOUT', `Keycloak ${subject.operation}: no answer within ${timeoutMs} ms`, {
      details: { ...subject, reason: 'timeout', timeoutMs },
    });
  }
  const code = transportCode(error);
  if (code !== undefined && TLS_CODES.test(code)) {
    return new WorkerManagerError('WM_ERR_CONFIGURATION', `Keycloak ${subject.operation}: TLS failed (${code}); check baseUrl and the CA trusted by Node (NODE_EXTRA_CA_CERTS)`, {
      details: { ...subject, reason: 'tls', errno: code },
    });
  }
  if (error instanceof TypeError || (code !== undefined && /^(E[A-Z]+|UND_ERR_[A-Z_]+)$/.test(code))) {
    return new WorkerManagerError('WM_ERR_NETWORK', `Keycloak ${subject.operation}: the connection failed${code === undefined ? '' : ` (${code})`}`, {
      details: { ...subject, reason: 'unreachable', errno: code ?? null },
    });
  }
  return undefined;
}

/**
 * An HTTP answer that is not a success, from the admin API or the token endpoint when its body is no OAuth error.
 * 401: the admin token is not accepted; 403: the admin client lacks a realm-management role; 429 and 5xx are
 * transient. Keycloak's own `error` text is kept (it names a rule or a resource, never a value), shortened.
 */
export function statusError(status: number, keycloakError: string | undefined, subject: RequestSubject): WorkerManagerError {
  const words = keycloakError === undefined ? '' : ` (${keycloakError.length > 120 ? `${keycloakError.slice(0, 120)}…` : keycloakError})`;
  const details = { ...subject, status, ...(keycloakError === undefined ? {} : { keycloakError: keycloakError.slice(0, 120) }) };
  if (status === 401) {
    return new WorkerManagerError('WM_ERR_AUTHENTICATION', `Keycloak ${subject.operation}: the admin API did not accept the plugin's token (401)${words}`, {
      details: { ...details, reason: 'admin-token-refused' },
    });
  }
  if (status === 403) {
    return new WorkerManagerError(
      'WM_ERR_PERMISSION_DENIED',
      `Keycloak ${subject.operation}: 403; the admin client's service account lacks the realm-management role this call needs (view-clients to read, manage-clients to rotate)`,
      { details: { ...details, reason: 'forbidden' } },
    );
  }
  if (status === 429) {
    return new WorkerManagerError('WM_ERR_NETWORK', `Keycloak ${subject.operation}: rate limited (429)`, { details: { ...details, reason: 'rate-limited' } });
  }
  if (status >= 500) {
    return new WorkerManagerError('WM_ERR_NETWORK', `Keycloak ${subject.operation}: Keycloak answered ${status}${words}`, { details: { ...details, reason: 'server-error' } });
  }
  return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `Keycloak ${subject.operation}: Keycloak answered ${status}${words}`, { details: { ...details, reason: 'rejected' } });
}

/**
 * An OAuth error from the token endpoint. `invalid_client` (wrong, expired or rotated-away secret, unknown client; older
 * Keycloak releases said `unauthorized_client` with an "Invalid client secret" description) means the plugin's
 * credential is not accepted: WM_ERR_AUTHENTICATION. `unauthorized_client` otherwise means the client exists and
 * authenticated but may not use the grant (service accounts off): WM_ERR_PERMISSION_DENIED.
 */
export function grantError(status: number, error: string, description: string | undefined, subject: RequestSubject & { clientId: string }): WorkerManagerError {
  const said = `${error}${description === undefined ? '' : `: ${description.slice(0, 120)}`}`;
  const details = { ...subject, status, oauthError: error, ...(description === undefined ? {} : { oauthErrorDescription: description.slice(0, 120) }) };
  const badSecret = error === 'invalid_client' || (error === 'unauthorized_client' && /invalid client|secret/i.test(description ?? ''));
  if (badSecret) {
    return new WorkerManagerError('WM_ERR_AUTHENTICATION', `Keycloak refused the client secret of '${subject.clientId}' (${said}): wrong, expired, rotated away, or no such client`, {
      details: { ...details, reason: 'invalid-client' },
    });
  }
  if (error === 'unauthorized_client') {
    return new WorkerManagerError('WM_ERR_PERMISSION_DENIED', `Keycloak does not let client '${subject.clientId}' use the client credentials grant (${said}); enable its service account`, {
      details: { ...details, reason: 'unauthorized-client' },
    });
  }
  if (error === 'invalid_scope') {
    return new WorkerManagerError('WM_ERR_CONFIGURATION', `Keycloak refused the scope asked for client '${subject.clientId}' (${said}); check the client's scope in the config`, {
      details: { ...details, reason: 'invalid-scope' },
    });
  }
  if (status >= 500) return statusError(status, error, subject);
  return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `Keycloak refused the token request of '${subject.clientId}' (${said})`, { details: { ...details, reason: 'grant-refused' } });
}
