import type { JournalEntry } from './RotationRecord.ts';
import { recorded, type Failure } from './rotationSupport.ts';

/** Longest wait between two attempts of a retried step. */
export const MAX_RETRY_MS = 300_000;

/** Exponential backoff of a retried step: 2 s after the first failed attempt, doubling, at most 5 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(1_000 * 2 ** Math.max(1, attempts), MAX_RETRY_MS);
}

/**
 * Counts a failed attempt on the record (kept in the journal, so the count and the backoff survive a restart) and
 * sets when the next one runs; returns the delay until then.
 */
export function noteRetry(entry: JournalEntry, failure: Failure, now = Date.now()): number {
  const attempts = (entry.retry?.attempts ?? 0) + 1;
  const delayMs = retryDelayMs(attempts);
  entry.retry = { attempts, lastAttemptAt: new Date(now).toISOString(), nextAttemptAt: new Date(now + delayMs).toISOString(), lastError: recorded(failure) };
  return delayMs;
}

/** The retried step succeeded: no next attempt; attempts and last error stay as history. */
export function settleRetry(entry: JournalEntry): void {
  if (entry.retry !== undefined) delete entry.retry.nextAttemptAt;
}
