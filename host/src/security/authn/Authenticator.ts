import type { Principal } from '../Principal.ts';

/**
 * Turns the credentials a caller presents into a {@link Principal}. Adapters: the local admin token (embedded default)
 * and OIDC bearer JWTs (Keycloak).
 */
export interface Authenticator {
  readonly mode: 'local' | 'oidc';
  start(): Promise<void>;
  /**
   * Verifies an `Authorization` header value (`Bearer <token>`). Throws WM_ERR_AUTHENTICATION with `details.reason`
   * (see AUTH_FAILURE_REASONS) when the caller cannot be identified, or HOST_ERR_AUTH_PROVIDER_UNAVAILABLE when the
   * identity provider cannot be reached to fetch its keys.
   */
  authenticate(authorization: string | undefined): Promise<Principal>;
  stop(): Promise<void>;
}

/** The token of a `Bearer <token>` header value, or undefined when the value is absent or empty. */
export function bearerToken(authorization: string | undefined): string | undefined | null {
  if (authorization === undefined) return undefined;
  const value = authorization.trim();
  if (value.length === 0) return undefined;
  const match = /^Bearer +([^\s]+)$/i.exec(value);
  // null: something was presented, but not a bearer token.
  return match?.[1] ?? null;
}
