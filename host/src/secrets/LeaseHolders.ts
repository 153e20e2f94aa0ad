import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { toWorkerManagerError, writeFileAtomic } from '@worker-manager/plugin-sdk';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import type { Logger } from '../observability/logger.ts';

/** One lease a credentials instance handed out: names and the version that names the lease, never a value. */
export interface LeaseKey {
  credentials: string;
  name: string;
  version: string;
}

const LeaseEntry = Type.Object(
  {
    credentials: Type.String({ minLength: 1 }),
    name: Type.String({ minLength: 1 }),
    version: Type.String({ minLength: 1 }),
    /** Workers that were handed the lease; none: it waits to be released. */
    workers: Type.Array(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
type LeaseEntry = Static<typeof LeaseEntry>;

const TableFile = Type.Object({ format: Type.Literal(1), leases: Type.Array(LeaseEntry) }, { additionalProperties: false });
const checkTable = Compile(TableFile);

/** What releasing needs: ends the lease in its store (the plugin's `releaseLease`). */
export type ReleaseLease = (lease: LeaseKey) => Promise<void>;

const keyOf = (l: LeaseKey): string => JSON.stringify([l.credentials, l.name, l.version]);
const nameKeyOf = (l: Pick<LeaseKey, 'credentials' | 'name'>): string => JSON.stringify([l.credentials, l.name]);

/**
 * Which workers hold which leased secret values (capability `secret.lease`), so that a lease is released once the
 * last worker holding it is gone, and not before. Persisted as `<stateDir>/secrets/leases.json` (versions, never
 * values), so a worker terminated after a host restart still releases its lease, and a release that failed is tried
 * again (after each later release trigger, and at start).
 *
 * A worker holds every lease it was handed until it is forgotten (terminated, or its create failed): a value it got
 * again (a restart) adds a lease, it does not replace one, since nothing tells the broker the old one is out of use.
 *
 * The broker's cache may hand a fetched lease to the next worker. So a lease is released only while no resolution of
 * its secret is under way ({@link begin}), and `onRelease` runs synchronously before the release, for the broker to
 * drop the cached value: nothing can pick the lease up once it is decided.
 */
export class LeaseHolders {
  readonly #file: string;
  readonly #release: ReleaseLease;
  readonly #onRelease: (lease: LeaseKey) => void;
  readonly #log: Logger;
  readonly #entries = new Map<string, LeaseEntry>();
  /** Resolutions under way, per secret. */
  readonly #inflight = new Map<string, number>();
  /** Leases being released now. */
  readonly #releasing = new Set<string>();
  #writing: Promise<void> = Promise.resolve();
  #sweeping: Promise<void> = Promise.resolve();

  constructor(deps: { stateDir: string; release: ReleaseLease; onRelease?: (lease: LeaseKey) => void; logger: Logger }) {
    this.#file = path.join(deps.stateDir, 'secrets', 'leases.json');
    this.#release = deps.release;
    this.#onRelease = deps.onRelease ?? (() => {});
    this.#log = deps.logger;
  }

  get file(): string {
    return this.#file;
  }

  /**
   * Loads the table. A damaged file is moved aside (`leases.json.damaged-<time>`) and the table starts empty: its
   * leases then end at their TTL in the store, which is better than a host that does not start.
   */
  async load(): Promise<void> {
    await mkdir(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!checkTable.Check(parsed)) {
      const aside = `${this.#file}.damaged-${Date.now()}`;
      await rename(this.#file, aside);
      this.#log.error({ file: this.#file, movedTo: aside }, 'the secret lease table is damaged; starting without it (its leases end at their TTL)');
      return;
    }
    for (const e of parsed.leases) this.#entries.set(keyOf(e), { ...e, workers: [...new Set(e.workers)] });
  }

  /** The leases held, with their workers (a copy). */
  all(): Array<LeaseKey & { workers: string[] }> {
    return [...this.#entries.values()].map((e) => ({ ...e, workers: [...e.workers] }));
  }

  /** A resolution of these secrets starts: none of their leases is released until the returned `done` is called. */
  begin(secrets: ReadonlyArray<Pick<LeaseKey, 'credentials' | 'name'>>): () => void {
    const keys = [...new Set(secrets.map(nameKeyOf))];
    for (const k of keys) this.#inflight.set(k, (this.#inflight.get(k) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const k of keys) {
        const n = (this.#inflight.get(k) ?? 1) - 1;
        if (n <= 0) this.#inflight.delete(k);
        else this.#inflight.set(k, n);
      }
      this.sweep();
    };
  }

  /**
   * Leases a resolution fetched (`workerId` absent) or handed to a worker. A fetched lease nobody is handed is released
   * once its resolution is done, like any other lease without holders.
   */
  async record(leases: readonly LeaseKey[], workerId?: string): Promise<void> {
    let changed = false;
    for (const l of leases) {
      const key = keyOf(l);
      let entry = this.#entries.get(key);
      if (entry === undefined) {
        entry = { credentials: l.credentials, name: l.name, version: l.version, workers: [] };
        this.#entries.set(key, entry);
        changed = true;
      }
      if (workerId !== undefined && !entry.workers.includes(workerId)) {
        entry.workers.push(workerId);
        changed = true;
      }
    }
    if (changed) await this.#persist();
  }

  /** A worker is gone: it holds no lease any more; the leases it was the last holder of are released. */
  async forget(workerId: string): Promise<void> {
    let changed = false;
    for (const e of this.#entries.values()) {
      if (!e.workers.includes(workerId)) continue;
      e.workers = e.workers.filter((w) => w !== workerId);
      changed = true;
    }
    if (changed) await this.#persist();
    this.sweep();
  }

  /** Keeps only holders among `workers` (the workers with recorded consumers at start); a holder outside it never got its worker. */
  async retain(workers: ReadonlySet<string>): Promise<void> {
    let changed = false;
    for (const e of this.#entries.values()) {
      const kept = e.workers.filter((w) => workers.has(w));
      if (kept.length !== e.workers.length) {
        e.workers = kept;
        changed = true;
      }
    }
    if (changed) await this.#persist();
    this.sweep();
  }

  /**
   * Starts releasing every lease that no worker holds and no resolution is using; returns at once. Releases run one
   * after another; one that fails stays in the table for the next sweep. {@link settled} waits for them.
   */
  sweep(): void {
    const due = [...this.#entries.entries()].filter(([key, e]) => e.workers.length === 0 && !this.#releasing.has(key) && !this.#inflight.has(nameKeyOf(e)));
    if (due.length === 0) return;
    const leases = due.map(([key, e]): [string, LeaseKey] => [key, { credentials: e.credentials, name: e.name, version: e.version }]);
    for (const [key, lease] of leases) {
      this.#releasing.add(key);
      this.#onRelease(lease);
    }
    this.#sweeping = this.#sweeping.then(() => this.#releaseAll(leases));
  }

  /** Resolves once the releases started so far have finished (released, or failed and kept). */
  settled(): Promise<void> {
    return this.#sweeping;
  }

  async #releaseAll(due: Array<[string, LeaseKey]>): Promise<void> {
    for (const [key, lease] of due) {
      try {
        await this.#release(lease);
        // A worker handed the lease while it was being released keeps its entry (it cannot happen while the resolution
        // guard holds, but the table must never forget a holder).
        if (this.#entries.get(key)?.workers.length === 0) this.#entries.delete(key);
        this.#log.info({ credentials: lease.credentials, name: lease.name, version: lease.version }, 'secret lease released: no worker holds it any more');
      } catch (error) {
        const failure = toWorkerManagerError(error);
        this.#log.warn({ credentials: lease.credentials, name: lease.name, version: lease.version, code: failure.code, err: failure.message }, 'secret lease could not be released; trying again later');
      } finally {
        this.#releasing.delete(key);
      }
    }
    await this.#persist().catch((error: unknown) => this.#log.error({ file: this.#file, code: toWorkerManagerError(error).code }, 'the secret lease table could not be written'));
  }

  #persist(): Promise<void> {
    // Each write serialises the table as it is when it starts, after the previous one: the last write holds every change.
    const next = this.#writing.catch(() => undefined).then(() => writeFileAtomic(this.#file, JSON.stringify({ format: 1, leases: [...this.#entries.values()] })));
    this.#writing = next;
    return next;
  }
}
