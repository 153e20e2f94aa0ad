import { WorkerManagerError, type SecretPayload } from '@worker-manager/plugin-sdk';
import { requestDigest } from './storeCrypto.ts';
import type { StoredRequest, StoredSecret, StoredVersion } from './storeFile.ts';

/** A map's key order is not part of its value: a retry that builds the same map in another order is the same write. */
function canonical(value: SecretPayload): string {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The stored form of a write carrying `requestToken` (capability `secret.write.idempotent`). `value` is absent for a
 * pending version whose value the plugin generates: its retry is recognised by the token alone.
 */
export async function writeRequest(key: Buffer, name: string, op: StoredRequest['op'], token: string, value: SecretPayload | undefined): Promise<StoredRequest> {
  const request: StoredRequest = { op, token: await requestDigest(key, ['token', name, token]) };
  if (value !== undefined) request.value = await requestDigest(key, ['value', name, token, canonical(value)]);
  return request;
}

/**
 * The version an earlier write with the same token made, when `request` repeats it; undefined for a token not seen
 * (or whose version was pruned: the retry is then a new write). The same token for another operation or another value
 * is `WM_ERR_CONFLICT`; the error names neither the token nor the value.
 */
export function replayedVersion(secret: StoredSecret | undefined, name: string, request: StoredRequest): StoredVersion | undefined {
  const earlier = secret?.versions.find((v) => v.request?.token === request.token);
  if (earlier?.request === undefined) return undefined;
  const conflict = (why: string): WorkerManagerError =>
    new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}': the request token was already used by a write of version ${earlier.version} ${why}`, {
      details: { name, version: earlier.version, reason: 'request-token-reused' },
    });
  if (earlier.request.op !== request.op) throw conflict(`made by ${earlier.request.op === 'put' ? 'putSecret' : 'createPendingVersion'}`);
  // A retry of createPendingVersion without a value repeats the first call whatever value that call had.
  if (request.value !== undefined && earlier.request.value !== request.value) throw conflict('with a different value');
  return earlier;
}
