import { open, rm, stat } from 'node:fs/promises';
import { threadId } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  timeoutMs: number;
  staleMs: number;
}

/**
 * Runs `fn` while holding `lockFile`, an exclusive-create lock shared by every thread and process that uses the same
 * store. Several threads of one instance (`threads: 2`) write the same file: without the lock two read-modify-write
 * cycles could interleave and one write would be lost. A lock older than `staleMs` was left by a writer that died
 * and is removed; writes hold it for milliseconds.
 */
export async function withFileLock<T>(lockFile: string, options: FileLockOptions, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      const fh = await open(lockFile, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify({ pid: process.pid, threadId, at: new Date().toISOString() }));
      } finally {
        await fh.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const age = await stat(lockFile).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > options.staleMs) {
      await rm(lockFile, { force: true });
      continue;
    }
    if (Date.now() - started > options.timeoutMs) {
      throw new WorkerManagerError('WM_ERR_TIMEOUT', `the credential store lock was not free within ${options.timeoutMs} ms`, {
        details: { lockFile, timeoutMs: options.timeoutMs },
      });
    }
    await sleep(2 + Math.floor(Math.random() * 8));
  }
  try {
    return await fn();
  } finally {
    await rm(lockFile, { force: true });
  }
}
