import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/**
 * Why a caller could not be authenticated. Stable: clients and tests match on `details.reason` of a
 * WM_ERR_AUTHENTICATION error, so a value never changes meaning once published.
 */
export const AUTH_FAILURE_REASONS = [
  /** No `Authorization` header (or an empty one), or a bus command without `auth` and no service identity. */
  'missing',
  /** Not `Bearer <token>`, or the token is not a well-formed JWT. */
  'malformed',
  /** The signature does not verify, or no key of the issuer matches the token's `kid` / `alg`. */
  'signature',
  /** `exp` is past, beyond the clock skew. */
  'expired',
  /** `nbf` is in the future, beyond the clock skew. */
  'not_yet_valid',
  /** `aud` names none of the configured audiences. */
  'audience',
  /** `iss` is not the configured issuer. */
  'issuer',
  /** A required scope is missing from `scope`. */
  'scope',
  /** A claim the principal needs (`sub`) is missing or has the wrong type. */
  'claims',
  /** The local admin token does not match. */
  'invalid_token',
] as const;
/** A stable authentication failure reason. */
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** A WM_ERR_AUTHENTICATION error (HTTP 401) with its reason; the message never contains the token. */
export function authFailure(reason: AuthFailureReason, message: string, details: Record<string, unknown> = {}): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_AUTHENTICATION', message, { details: { reason, ...details } });
}
