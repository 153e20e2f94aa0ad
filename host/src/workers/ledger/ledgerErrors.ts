import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';

// The errors both adapters raise in the same situations, written once so that the codes and details match.

/** HOST_ERR_WORKER_RECORD_NOT_FOUND for `id`. */
export function recordNotFound(id: string): WorkerManagerError {
  return hostError('HOST_ERR_WORKER_RECORD_NOT_FOUND', `no worker record ${id}`, { details: { workerId: id } });
}

/** HOST_ERR_WORKER_RECORD_EXISTS for `id`. */
export function recordExists(id: string): WorkerManagerError {
  return hostError('HOST_ERR_WORKER_RECORD_EXISTS', `a worker record ${id} already exists`, { details: { workerId: id } });
}

/** HOST_ERR_WORKER_STORE_UNAVAILABLE for a store used after close(). */
export function storeClosed(adapter: string): WorkerManagerError {
  return hostError('HOST_ERR_WORKER_STORE_UNAVAILABLE', `the ${adapter} worker store is closed`, { details: { adapter } });
}

/**
 * What to throw when an adapter call failed: a coded error as it is (it already says what went wrong), anything else
 * (a NATS timeout, SQLITE_BUSY after the busy timeout, a disk error) as HOST_ERR_WORKER_STORE_UNAVAILABLE with the
 * original as cause, so that callers see one retryable code whatever the adapter.
 */
export function storeFailure(adapter: string, operation: string, error: unknown): WorkerManagerError {
  if (error instanceof WorkerManagerError) return error;
  return hostError('HOST_ERR_WORKER_STORE_UNAVAILABLE', `the ${adapter} worker store could not ${operation}: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
    details: { adapter, operation },
  });
}
