import { hostError } from '../../errors.ts';
import type { IdempotencyClaim, IdempotencyResult } from './WorkerStore.ts';

/** What an adapter keeps per (tenant, principal, key). */
export interface StoredClaim {
  requestHash: string;
  workerId: string;
  /** Epoch milliseconds; the claim is absent from this instant on. */
  expiresAt: number;
}

/** The claim's times as epoch milliseconds, after checking the claim is usable. */
export function claimTimes(claim: IdempotencyClaim, clock: () => Date): { now: number; expiresAt: number } {
  const now = (claim.now ?? clock()).getTime();
  const expiresAt = claim.expiresAt.getTime();
  const empty = (['tenant', 'principal', 'key', 'requestHash', 'workerId'] as const).filter((f) => typeof claim[f] !== 'string' || claim[f] === '');
  if (empty.length > 0 || !Number.isFinite(now) || !Number.isFinite(expiresAt)) {
    throw hostError('HOST_ERR_WORKER_RECORD_INVALID', `idempotency claim is invalid: ${empty.length > 0 ? `${empty.join(', ')} must be non-empty strings` : 'expiresAt and now must be valid dates'}`, {
      details: { fields: empty },
    });
  }
  return { now, expiresAt };
}

/**
 * The answer for a key that already has `existing`, or undefined when the claim must be stored (nothing stored, or
 * only an expired claim, which counts as absent). Both adapters decide here, inside their atomic step.
 */
export function judgeClaim(existing: StoredClaim | undefined, requestHash: string, now: number): IdempotencyResult | undefined {
  if (existing === undefined || existing.expiresAt <= now) return undefined;
  return existing.requestHash === requestHash ? { status: 'replay', workerId: existing.workerId } : { status: 'conflict' };
}
