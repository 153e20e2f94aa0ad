import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { EventEnvelope } from './EventEnvelope.ts';

type Line = { put: EventEnvelope } | { ack: string };

/**
 * A durable, append-only queue of events waiting for the bus, in one JSON-lines file. `append` resolves only after the
 * lines are written and fdatasync'd, so an event the publisher was told "accepted" survives a crash of the host.
 * Acknowledgements are appended without a sync: losing one only means re-sending an event the bus de-duplicates by id.
 * Writes are batched: everything queued while a write is in progress goes out in the next single write + sync.
 */
export class Outbox {
  readonly file: string;
  /** Ids held, in append order, with the time they were appended. */
  readonly #live = new Map<string, number>();
  #fh: FileHandle | undefined;
  #buffer: string[] = [];
  #needsSync = false;
  #waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  #writing: Promise<void> | undefined;

  constructor(file: string) {
    this.file = file;
  }

  /** Opens the file and returns the events a previous run left unacknowledged, in order (compacting the file). */
  async open(): Promise<EventEnvelope[]> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const pending = new Map<string, EventEnvelope>();
    let text = '';
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const raw of text.split('\n')) {
      if (raw.length === 0) continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        // Only a torn last line can be unparsable (a crash mid-write); that event was never reported as accepted.
        continue;
      }
      if ('put' in line) pending.set(line.put.id, line.put);
      else pending.delete(line.ack);
    }
    const events = [...pending.values()];
    // Rewrite with only what is still pending, so the file does not grow across restarts.
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(events.map((e) => `${JSON.stringify({ put: e })}\n`).join(''));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    await syncDir(path.dirname(this.file));
    this.#fh = await open(this.file, 'a');
    const now = Date.now();
    for (const e of events) this.#live.set(e.id, now);
    return events;
  }

  /** Number of events held. */
  get depth(): number {
    return this.#live.size;
  }

  /** Age in ms of the oldest event held (0 when empty). */
  oldestAgeMs(now = Date.now()): number {
    for (const at of this.#live.values()) return now - at;
    return 0;
  }

  has(id: string): boolean {
    return this.#live.has(id);
  }

  /** Durably appends events; resolves once they are on disk. */
  append(events: readonly EventEnvelope[]): Promise<void> {
    const now = Date.now();
    for (const e of events) {
      if (this.#live.has(e.id)) continue;
      this.#live.set(e.id, now);
      this.#buffer.push(`${JSON.stringify({ put: e })}\n`);
      this.#needsSync = true;
    }
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#kick();
    });
  }

  /** Marks events as delivered. */
  ack(id: string): void {
    if (!this.#live.delete(id)) return;
    this.#buffer.push(`${JSON.stringify({ ack: id })}\n`);
    this.#kick();
  }

  /** Waits for every queued write, then closes the file. */
  async close(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
    await this.#fh?.close();
    this.#fh = undefined;
  }

  #kick(): void {
    this.#writing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    while (this.#buffer.length > 0 || this.#waiters.length > 0) {
      const lines = this.#buffer;
      const waiters = this.#waiters;
      const sync = this.#needsSync;
      this.#buffer = [];
      this.#waiters = [];
      this.#needsSync = false;
      try {
        const fh = this.#fh;
        if (fh === undefined) throw new Error(`outbox ${this.file} is not open`);
        if (this.#live.size === 0 && !sync) {
          // Everything delivered: start the file over instead of letting acks pile up.
          await fh.truncate(0);
        } else if (lines.length > 0) {
          await fh.write(lines.join(''));
          if (sync) await fh.datasync();
        }
        for (const w of waiters) w.resolve();
      } catch (error) {
        for (const w of waiters) w.reject(error);
      }
    }
    this.#writing = undefined;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh.close();
  }
}
