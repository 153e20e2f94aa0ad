import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** Why the store cannot be used; `details.reason` of WM_ERR_CONFIGURATION. */
export type StoreFailure = 'no-key' | 'wrong-key' | 'corrupt-store' | 'bad-config';

/** A WM_ERR_CONFIGURATION naming what is wrong with the key or the store file, never any value. */
export function storeError(reason: StoreFailure, message: string, details: Record<string, unknown> = {}, cause?: unknown): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_CONFIGURATION', message, { details: { ...details, reason }, ...(cause === undefined ? {} : { cause }) });
}
