import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@worker-manager/plugin-sdk';

/**
 * How many RunTask calls of a worker ECS answered with `failures[]` only, kept under the instance's state folder so
 * that every thread, and the next process, agrees on it. It is part of the RunTask clientToken: ECS answers a repeated
 * token with the original result for 24 hours, a result of failures included, so a worker whose first RunTask found a
 * full cluster would otherwise never start. Threads creating the same worker at once read the same count, so they
 * still send one token and get one task.
 */
export class RunAttempts {
  readonly #dir: string;

  constructor(stateDir: string) {
    this.#dir = path.join(stateDir, 'run-attempts');
  }

  #file(workerId: string): string {
    return path.join(this.#dir, workerId);
  }

  async failed(workerId: string): Promise<number> {
    try {
      const n = Number((await readFile(this.#file(workerId), 'utf8')).trim());
      return Number.isInteger(n) && n >= 0 ? n : 0;
    } catch {
      return 0;
    }
  }

  async recordFailure(workerId: string, failedBefore: number): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    await writeFileAtomic(this.#file(workerId), String(failedBefore + 1));
  }

  /** Forgets a worker once it has a task: the count only matters until then. */
  async clear(workerId: string): Promise<void> {
    await rm(this.#file(workerId), { force: true });
  }
}
