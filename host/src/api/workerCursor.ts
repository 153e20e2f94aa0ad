import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** Sort key of a worker in listings: instance, then worker id (both unique together, stable across pages). */
export function workerSortKey(instance: string, workerId: string): string {
  return `${instance}\u0000${workerId}`;
}

/**
 * Encodes the position after which the next page starts. Opaque to clients (base64url JSON) so that its shape can
 * change; a position rather than an offset, so workers created or removed between pages shift nothing.
 */
export function encodeWorkerCursor(afterKey: string): string {
  return Buffer.from(JSON.stringify({ v: 1, after: afterKey }), 'utf8').toString('base64url');
}

/** Decodes a cursor made by {@link encodeWorkerCursor}; anything else is a WM_ERR_VALIDATION naming the parameter. */
export function decodeWorkerCursor(cursor: string): string {
  try {
    const data = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (typeof data === 'object' && data !== null && (data as { v?: unknown }).v === 1 && typeof (data as { after?: unknown }).after === 'string') {
      return (data as { after: string }).after;
    }
  } catch {
    // Falls through to the validation error below.
  }
  throw new WorkerManagerError('WM_ERR_VALIDATION', 'cursor is not one this API returned', { details: { path: '/querystring/cursor' } });
}
