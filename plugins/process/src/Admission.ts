import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { OwnerLabels, RuntimeSpec } from '@worker-manager/plugin-sdk';
import { refreshLock, withLock, type Locked } from './lockFile.ts';
import { readJson } from './jsonFile.ts';

/** What an active worker holds against the instance's limits. */
export interface Reservation {
  cpuMillicores: number;
  memoryMiB: number;
  storageMiB: number;
}

/** Sums over the admitted workers. */
export interface Totals extends Reservation {
  activeWorkers: number;
}

/** One admitted worker: the generation (restart count) it was admitted for, and what it reserved. */
interface Entry extends Reservation {
  generation: number;
}

/** How a recount sees one worker folder. */
export type Census =
  /** A worker that has not ended: it counts. */
  | { kind: 'active'; generation: number; reservation: Reservation }
  /** A folder being created (claimed, no meta yet): it counts if it was admitted already. */
  | { kind: 'pending' }
  /** Ended, not ours, or gone. */
  | { kind: 'none' };

/** Walks the worker folders for a recount, one {@link Census} per worker, yielding to the event loop now and then. */
export type CensusTaker = () => AsyncIterable<[workerId: string, census: Census]>;

/** A lock not refreshed for this long belongs to a thread that died holding it. */
const STALE_LOCK_MS = 10_000;
/** Workers looked at between two turns of the event loop during a recount. */
const RECOUNT_BATCH = 64;
/** totals.json is rewritten in place at this length: no new file per admission (see #write). */
const TOTALS_BYTES = 256;

/** The reservation of a spec (what the capacity report and quota admission count). */
export function reservationOf(spec: RuntimeSpec): Reservation {
  const r = spec.resources ?? {};
  return { cpuMillicores: r.cpuMillicores ?? 0, memoryMiB: r.memoryMiB ?? 0, storageMiB: r.storageMiB ?? 0 };
}

const zero = (): Totals => ({ activeWorkers: 0, cpuMillicores: 0, memoryMiB: 0, storageMiB: 0 });

function add(totals: Totals, r: Reservation, sign: 1 | -1): Totals {
  return {
    activeWorkers: totals.activeWorkers + sign,
    cpuMillicores: totals.cpuMillicores + sign * r.cpuMillicores,
    memoryMiB: totals.memoryMiB + sign * r.memoryMiB,
    storageMiB: totals.storageMiB + sign * r.storageMiB,
  };
}

/**
 * Admission of workers against `maxWorkers` and the machine's resources, in O(1) per create whatever the number of
 * workers, and exact across every thread of the instance.
 *
 * The folder `<stateDir>/admission/<owner>/` keeps running totals (`totals.json`) and one entry per admitted worker
 * (`workers/<id>`), changed only under one lock: a create checks the totals and adds its entry; whoever first sees a
 * worker end (terminate, the watcher, a recount) removes it. Removal names the generation it saw end, so a watcher
 * that saw generation 3 end cannot remove the entry a restart just made for generation 4. Entries make add and remove
 * idempotent; the totals change only with them.
 *
 * The totals may run ahead of the truth, never behind it: a worker is admitted before it starts, and only a worker
 * seen ended is removed. What can leave them ahead (a thread killed between admitting and starting a worker, or
 * between seeing it end and removing it) is repaired by a recount from the worker folders, which runs before any
 * refusal (so nothing is refused on a stale count), for every capacity report, when the totals are missing (a state
 * dir from before this file existed), and when a lock is taken over from a dead holder.
 */
export class Admission {
  readonly #lock: string;
  readonly #totalsFile: string;
  readonly #entries: string;
  readonly #census: CensusTaker;
  #recounting: Promise<Totals> | undefined;

  constructor(stateDir: string, owner: OwnerLabels, census: CensusTaker) {
    // Per owner: workers of another host or instance in the same folder are not counted (as in listWorkers).
    const key = createHash('sha256').update(`${owner['worker-manager/host']}\0${owner['worker-manager/instance']}`).digest('hex').slice(0, 16);
    const dir = path.join(stateDir, 'admission', key);
    this.#lock = path.join(dir, 'lock');
    this.#totalsFile = path.join(dir, 'totals.json');
    this.#entries = path.join(dir, 'workers');
    this.#census = census;
    mkdirSync(this.#entries, { recursive: true, mode: 0o700 });
  }

  /**
   * Admits a worker if `refuse(totals)` finds nothing wrong with the totals. Otherwise recounts (concurrent refusals
   * on this thread share one recount) and asks again, and throws what it returns the second time. Admitting a worker
   * that holds an entry already only updates the entry.
   */
  async admit(workerId: string, generation: number, reservation: Reservation, refuse: (totals: Totals) => Error | undefined): Promise<void> {
    const entry: Entry = { generation, ...reservation };
    const admitted = await this.#locked((totals) => refuse(totals) === undefined && this.#put(totals, workerId, entry));
    if (admitted) return;
    await this.recount();
    await this.#locked((totals) => {
      const refusal = refuse(totals);
      if (refusal !== undefined) throw refusal;
      this.#put(totals, workerId, entry);
    });
  }

  /** Records a restart: the worker counts (again), for its new generation, whatever the limits say. */
  async readmit(workerId: string, generation: number, reservation: Reservation): Promise<void> {
    await this.#locked((totals) => {
      this.#put(totals, workerId, { generation, ...reservation });
    });
  }

  /** Removes a worker seen ended in `generation`; nothing when its entry is gone or belongs to another generation. */
  async release(workerId: string, generation: number): Promise<void> {
    await this.#locked((totals) => {
      const file = path.join(this.#entries, workerId);
      const entry = readJson<Entry>(file);
      if (entry === undefined || entry.generation !== generation) return;
      rmSync(file, { force: true });
      this.#write(add(totals, entry, -1));
    });
  }

  /** Exact totals, from the worker folders (O(workers)); concurrent callers on this thread share one recount. */
  recount(): Promise<Totals> {
    this.#recounting ??= withLock(this.#lock, STALE_LOCK_MS, () => this.#recountLocked()).finally(() => {
      this.#recounting = undefined;
    });
    return this.#recounting;
  }

  /** Adds or replaces an entry and returns true. */
  #put(totals: Totals, workerId: string, entry: Entry): true {
    const file = path.join(this.#entries, workerId);
    const old = readJson<Entry>(file);
    this.#writeEntry(file, entry);
    this.#write(add(old === undefined ? totals : add(totals, old, -1), entry, 1));
    return true;
  }

  /**
   * Entries and totals are read and written under the lock only, so they need no write-then-rename (which costs a
   * directory change on every admission); a holder that died mid-write leaves a stale lock, and whoever takes it
   * over recounts. An entry is a new file, written once (one left half written is replaced).
   */
  #writeEntry(file: string, entry: Entry): void {
    const text = JSON.stringify(entry);
    try {
      writeFileSync(file, text, { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      rmSync(file, { force: true });
      writeFileSync(file, text, { flag: 'wx', mode: 0o600 });
    }
  }

  /** Rewrites totals.json in place at a fixed length (JSON, then spaces), so an admission changes no directory. */
  #write(totals: Totals): void {
    const text = JSON.stringify(totals).padEnd(TOTALS_BYTES);
    let fd: number;
    try {
      fd = openSync(this.#totalsFile, 'r+');
    } catch {
      writeFileSync(this.#totalsFile, text, { mode: 0o600 });
      return;
    }
    try {
      writeSync(fd, text, 0);
    } finally {
      closeSync(fd);
    }
  }

  /** Runs `fn` under the lock with the current totals, recounting first when they cannot be trusted. */
  #locked<T>(fn: (totals: Totals) => T | Promise<T>): Promise<T> {
    return withLock(this.#lock, STALE_LOCK_MS, async (how: Locked) => {
      const totals = readJson<Totals>(this.#totalsFile);
      // A dead holder may have written an entry and not the totals; a missing file is a state dir from before.
      return fn(how === 'stale' || totals === undefined ? await this.#recountLocked() : totals);
    });
  }

  /** Rebuilds the entries and the totals from the worker folders; the caller holds the lock. */
  async #recountLocked(): Promise<Totals> {
    const kept = new Set<string>();
    let totals = zero();
    let seen = 0;
    for await (const [workerId, census] of this.#census()) {
      if (++seen % RECOUNT_BATCH === 0) {
        refreshLock(this.#lock);
        await yieldToLoop();
      }
      const file = path.join(this.#entries, workerId);
      if (census.kind === 'active') {
        // An entry ahead of the folder is a restart under way: its generation is the one to keep.
        const entry = readJson<Entry>(file);
        if (entry === undefined || entry.generation < census.generation) this.#writeEntry(file, { generation: census.generation, ...census.reservation });
        totals = add(totals, census.reservation, 1);
        kept.add(workerId);
      } else if (census.kind === 'pending') {
        const entry = readJson<Entry>(file);
        if (entry !== undefined) {
          totals = add(totals, entry, 1);
          kept.add(workerId);
        }
      }
    }
    // Entries of workers that ended, never started, or whose folder is gone.
    for (const name of readdirSync(this.#entries)) {
      if (!kept.has(name)) rmSync(path.join(this.#entries, name), { force: true });
    }
    this.#write(totals);
    return totals;
  }
}
