import { closeSync, openSync, rmSync, statSync, unlinkSync, utimesSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * How a lock was taken: free, or over from a holder that died (`'stale'`), whose half-done work the new holder may
 * have to repair.
 */
export type Locked = 'locked' | 'stale';

/**
 * Takes a lock shared by every thread (and process) using one state dir: held while the file `file` exists, taken by
 * an exclusive create, which succeeds for one caller only (a file rather than a folder: on ext4 under load a mkdir and
 * rmdir pair costs a millisecond, a create and unlink a fraction of that). A holder that died leaves the file behind;
 * once its mtime is older than `staleMs` the next caller takes the lock over. A holder that keeps the lock for long
 * refreshes it with {@link refreshLock}. Returns false while another caller holds it.
 */
export function tryLock(file: string, staleMs: number): Locked | false {
  if (create(file)) return 'locked';
  try {
    if (Date.now() - statSync(file).mtimeMs > staleMs) {
      // recursive: state dirs of earlier versions used a folder as the lock
      rmSync(file, { recursive: true, force: true });
      if (create(file)) return 'stale';
    }
  } catch {
    // released meanwhile: the next attempt takes it
  }
  return false;
}

function create(file: string): boolean {
  try {
    closeSync(openSync(file, 'wx'));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

/** Gives the lock back. */
export function unlock(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // taken over as stale by another caller
  }
}

/** Tells other callers that the holder is still alive. */
export function refreshLock(file: string): void {
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    // taken over as stale: nothing to refresh
  }
}

/** Waits for the lock (polling every `everyMs`), runs `fn` with how it was taken, and gives the lock back. */
export async function withLock<T>(file: string, staleMs: number, fn: (how: Locked) => T | Promise<T>, everyMs = 2): Promise<T> {
  let how = tryLock(file, staleMs);
  while (how === false) {
    await sleep(everyMs);
    how = tryLock(file, staleMs);
  }
  try {
    return await fn(how);
  } finally {
    unlock(file);
  }
}
