import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';

/**
 * A file lease shared by the threads of one instance (same state dir): the holder refreshes its mtime; a lease not
 * refreshed for `staleMs` belongs to a dead thread and may be taken. Renaming the stale file away succeeds for one
 * taker only.
 */
export class Lease {
  readonly #file: string;
  readonly #staleMs: number;
  readonly #token = randomUUID();

  constructor(file: string, staleMs: number) {
    this.#file = file;
    this.#staleMs = staleMs;
  }

  holds(): boolean {
    try {
      return readFileSync(this.#file, 'utf8') === this.#token;
    } catch {
      return false;
    }
  }

  /** Takes the lease if it is free, stale or already ours. */
  acquire(): boolean {
    try {
      writeFileSync(this.#file, this.#token, { flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    }
    if (this.holds()) return true;
    try {
      if (Date.now() - statSync(this.#file).mtimeMs < this.#staleMs) return false;
      const stale = `${this.#file}.${this.#token}.stale`;
      renameSync(this.#file, stale);
      unlinkSync(stale);
      writeFileSync(this.#file, this.#token, { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }

  /** Refreshes the lease; false when it is no longer ours. */
  renew(): boolean {
    if (!this.holds()) return false;
    const now = new Date();
    try {
      utimesSync(this.#file, now, now);
      return true;
    } catch {
      return false;
    }
  }

  release(): void {
    if (!this.holds()) return;
    try {
      unlinkSync(this.#file);
    } catch {
      // already gone
    }
  }
}
