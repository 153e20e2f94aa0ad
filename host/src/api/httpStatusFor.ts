import type { ErrorCategory, WorkerManagerError } from '@worker-manager/plugin-sdk';

/**
 * HTTP status of each error category. Infrastructure failures are 503 (transient or not: the service cannot serve
 * the request now, and the body's `code` says whether retrying helps). Configuration errors are the operator's to
 * fix, not the caller's, so they are 500, except the per-code overrides below.
 */
export const STATUS_BY_CATEGORY: Readonly<Record<ErrorCategory, number>> = {
  ClientValidation: 400,
  Authorization: 403,
  ResourceLimits: 429,
  TransientInfrastructure: 503,
  PermanentInfrastructure: 503,
  Configuration: 500,
  Internal: 500,
};

/** Codes whose status differs from their category's; host/src/api/README.md has the full table. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  WM_ERR_NOT_FOUND: 404,
  WM_ERR_SECRET_NOT_FOUND: 404,
  WM_ERR_SECRET_VERSION_NOT_FOUND: 404,
  HOST_ERR_INSTANCE_NOT_FOUND: 404,
  WM_ERR_ALREADY_EXISTS: 409,
  WM_ERR_CONFLICT: 409,
  HOST_ERR_API_BODY_TOO_LARGE: 413,
  HOST_ERR_SPEC_TOO_LARGE: 413,
  HOST_ERR_API_UNSUPPORTED_MEDIA_TYPE: 415,
  WM_ERR_SECRET_SIZE_LIMIT: 413,
  WM_ERR_AUTHENTICATION: 401,
  // The request asked for a feature the chosen provider lacks: the caller can fix it (another provider, or drop it).
  WM_ERR_COMPATIBILITY: 400,
  // The worker ledger: a request that contradicts what the ledger holds is a conflict, a missing record is 404.
  HOST_ERR_WORKER_TRANSITION_ILLEGAL: 409,
  HOST_ERR_IDEMPOTENCY_CONFLICT: 409,
  HOST_ERR_WORKER_RECORD_EXISTS: 409,
  HOST_ERR_WORKER_REVISION_CONFLICT: 409,
  HOST_ERR_WORKER_RECORD_NOT_FOUND: 404,
  // Rotation: a request that contradicts a secret's rotation state (a failed version, an unfinished rollback).
  HOST_ERR_ROTATION_VERSION_FAILED: 409,
  HOST_ERR_ROTATION_ROLLBACK_PENDING: 409,
  // Out of heap is the plugin's failure, not the caller's rate: retrying later may work, throttling is not implied.
  HOST_ERR_PLUGIN_OUT_OF_MEMORY: 503,
};

/** The HTTP status an error is answered with: the code's own status when it has one, else its category's. */
export function httpStatusFor(error: Pick<WorkerManagerError, 'code' | 'category'>): number {
  return STATUS_BY_CODE[error.code] ?? STATUS_BY_CATEGORY[error.category];
}
