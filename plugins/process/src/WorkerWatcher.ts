import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync, renameSync } from 'node:fs';
import { isFinalState, type OwnerLabels, type PluginLogger, type WorkerEvent, type WorkerState } from '@worker-manager/plugin-sdk';
import { discard, discardAbandoned } from './abandonedFolders.ts';
import { readJson, writeJsonAtomic } from './jsonFile.ts';
import { indexLogs, logSizes, type LogSizes } from './logIndex.ts';
import { finishedAt, observeLive, observeWorker } from './observeWorker.ts';
import { readMeta, type WorkerMeta } from './WorkerMeta.ts';
import { workerPaths, workersDir, type WorkerPaths } from './workerPaths.ts';

/** Settings of a {@link WorkerWatcher}. */
export interface WatcherOptions {
  stateDir: string;
  owner: OwnerLabels;
  logger: PluginLogger;
  /** Where events go; undefined when the plugin does not emit events. */
  emit?: (event: WorkerEvent) => void;
  pollMs: number;
  retainFinishedMs: number;
  /** Stops a worker whose spec.timeoutMs has passed. */
  stopForDeadline(workerId: string): Promise<void>;
  /** Called once the watcher sees a worker's `generation` end (it gives back the worker's admission). */
  ended?(workerId: string, generation: number): Promise<void>;
  /** A lease not refreshed for this long belongs to a dead thread; default 5000 ms. */
  leaseStaleMs?: number;
}

interface Watched {
  reported: WorkerState;
  lastBeat: number;
  /** Read when watching starts, and again whenever its wrapper is not seen running (a restart writes a new one). */
  meta: WorkerMeta;
  /** Log sizes the last indexing pass covered: a pass runs only once they change. */
  indexed: LogSizes;
}

const BEAT_MS = 1_000;
const SCAN_MS = 2_000;
const GC_MS = 60_000;
/**
 * Longest run of worker checks in one tick, once MIN_CHECKS are done. A tick is synchronous, and the plugin thread's
 * heartbeat and calls wait for it: past this budget the pass goes on at the next tick from where it stopped, so with
 * thousands of workers a worker is checked every few intervals instead of the thread stalling. Up to MIN_CHECKS
 * workers are all checked in every tick, whatever the load.
 */
const TICK_BUDGET_MS = 10;
const MIN_CHECKS = 16;
/** The next tick waits at least this many times as long as the last one took: the watcher keeps 90% of the thread free. */
const IDLE_PER_BUSY = 9;
const NOT_INDEXED: LogSizes = { stdout: -1, stderr: -1 };

const sameOwner = (a: OwnerLabels, b: OwnerLabels): boolean =>
  a['worker-manager/host'] === b['worker-manager/host'] && a['worker-manager/instance'] === b['worker-manager/instance'];

/**
 * Watches workers for one plugin thread: emits lifecycle events, enforces deadlines, indexes logs, and removes
 * folders of workers that finished longer ago than the retention.
 *
 * Several threads of one instance share the folder, so each worker is watched by exactly one thread, the holder of
 * its lease file (a token, refreshed by mtime every second). The thread that creates a worker takes its lease; a
 * thread that starts (or scans, every 2 s) takes over workers whose lease is missing or stale, i.e. whose watcher
 * died. What was last emitted is kept in `reported.json`, so an adopting thread continues where the dead one
 * stopped instead of repeating events. A takeover race between two threads can, rarely, emit one transition twice
 * before the loser notices at its next heartbeat.
 */
export class WorkerWatcher {
  readonly #o: WatcherOptions;
  readonly #token = randomUUID();
  readonly #watched = new Map<string, Watched>();
  readonly #deadlineStops = new Set<string>();
  readonly #leaseStaleMs: number;
  /** Where the pass over the watched workers goes on at the next tick. */
  #cursor = 0;
  /** Workers last seen reported final, by the mtime of their reported.json, which the adoption scan skips. */
  #settled = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #lastScan = 0;
  #lastGc = 0;

  constructor(options: WatcherOptions) {
    this.#o = options;
    this.#leaseStaleMs = options.leaseStaleMs ?? 5_000;
  }

  /** Adopts orphans at once, then checks every `pollMs`. */
  start(): void {
    this.#tick();
  }

  /** Starts watching a worker this thread just created or restarted (if no live thread watches it already). */
  watch(workerId: string, reported?: WorkerState): void {
    if (this.#stopped) return;
    const paths = workerPaths(this.#o.stateDir, workerId);
    const meta = readMeta(paths);
    const watched = this.#watched.get(workerId);
    if (watched !== undefined) {
      // Restarted on this thread: watch the new generation from now on.
      if (meta !== undefined) watched.meta = meta;
      return;
    }
    if (meta === undefined || !this.#acquire(paths)) return;
    this.#watched.set(workerId, { reported: reported ?? readJson<WorkerState>(paths.reported) ?? { phase: 'Creating' }, lastBeat: Date.now(), meta, indexed: NOT_INDEXED });
  }

  /** Ids this thread watches (for tests and diagnostics). */
  get watching(): string[] {
    return [...this.#watched.keys()];
  }

  /** Stops the timer and hands every lease back, so another thread adopts the workers at once. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const id of this.#watched.keys()) this.#release(workerPaths(this.#o.stateDir, id));
    this.#watched.clear();
  }

  #tick(): void {
    if (this.#stopped) return;
    const started = performance.now();
    const now = Date.now();
    try {
      if (now - this.#lastScan >= SCAN_MS) {
        this.#lastScan = now;
        this.#adopt();
      }
      this.#checkSome(now);
      if (now - this.#lastGc >= GC_MS) {
        this.#lastGc = now;
        this.#collectGarbage(now);
      }
    } catch (error) {
      this.#o.logger.warn('process provider: watcher pass failed', { error: error instanceof Error ? error.message : String(error) });
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.#tick(), Math.max(this.#o.pollMs, IDLE_PER_BUSY * (performance.now() - started)));
    this.#timer.unref();
  }

  /** Checks watched workers, round-robin from where the last tick stopped, until all are done or the budget is spent. */
  #checkSome(now: number): void {
    const ids = [...this.#watched.keys()];
    const deadline = performance.now() + TICK_BUDGET_MS;
    for (let done = 0; done < ids.length && (done < MIN_CHECKS || performance.now() < deadline); done++) {
      this.#cursor = this.#cursor % ids.length;
      const id = ids[this.#cursor++] as string;
      const w = this.#watched.get(id);
      if (w === undefined) continue;
      try {
        this.#check(id, w, now);
      } catch (error) {
        // One worker's folder failing (removed under us, disk full) must not stop the others from being watched.
        this.#o.logger.warn('process provider: watcher check failed', { workerId: id, error: error instanceof Error ? error.message : String(error) });
      }
    }
  }

  #check(workerId: string, w: Watched, now: number): void {
    const paths = workerPaths(this.#o.stateDir, workerId);
    if (now - w.lastBeat >= BEAT_MS) {
      if (!this.#holds(paths)) {
        this.#watched.delete(workerId);
        return;
      }
      try {
        utimesSync(paths.lease, new Date(now), new Date(now));
      } catch {
        // removed under us; the next beat drops the worker
      }
      w.lastBeat = now;
    }
    // While the wrapper runs the meta read at watch time is current; once it does not, a restart may have replaced it.
    let state = observeLive(paths, w.meta);
    if (state === undefined) {
      const meta = readMeta(paths);
      if (meta === undefined) {
        this.#watched.delete(workerId);
        return;
      }
      w.meta = meta;
      state = observeWorker(paths, meta);
    }
    const meta = w.meta;
    const final = isFinalState(state);
    if (!final && meta.deadlineAt !== undefined && now >= meta.deadlineAt && state.phase !== 'Terminating') this.#stopForDeadline(workerId);
    const sizes = logSizes(paths);
    if ((final || sizes.stdout !== w.indexed.stdout || sizes.stderr !== w.indexed.stderr) && indexLogs(paths, final)) w.indexed = sizes;
    if (state.phase !== w.reported.phase) {
      this.#report(workerId, w.reported, state, now);
      w.reported = state;
      writeJsonAtomic(paths.reported, state);
    }
    if (final) {
      void this.#o.ended?.(workerId, meta.generation);
      this.#release(paths);
      this.#watched.delete(workerId);
    }
  }

  #report(workerId: string, oldState: WorkerState, newState: WorkerState, now: number): void {
    const emit = this.#o.emit;
    if (emit === undefined) return;
    const timestamp = new Date(now).toISOString();
    emit({ type: 'WorkerStateChanged', workerId, oldState, newState, timestamp });
    if (newState.phase === 'Terminated') {
      emit(newState.exitCode === undefined ? { type: 'WorkerTerminated', workerId, timestamp } : { type: 'WorkerTerminated', workerId, exitCode: newState.exitCode, timestamp });
    } else if (newState.phase === 'Failed') {
      emit({ type: 'WorkerFailed', workerId, reason: newState.reason, timestamp });
    }
  }

  #stopForDeadline(workerId: string): void {
    if (this.#deadlineStops.has(workerId)) return;
    this.#deadlineStops.add(workerId);
    this.#o.logger.info('process provider: worker reached its timeoutMs, stopping it', { workerId });
    this.#o
      .stopForDeadline(workerId)
      .catch((error: unknown) => this.#o.logger.warn('process provider: deadline stop failed', { workerId, error: error instanceof Error ? error.message : String(error) }))
      .finally(() => this.#deadlineStops.delete(workerId));
  }

  /** Takes the workers nobody watches: not yet reported final, lease missing or stale. */
  #adopt(): void {
    const settled = new Map<string, number>();
    const now = Date.now();
    for (const id of this.#ids()) {
      if (this.#watched.has(id)) continue;
      const paths = workerPaths(this.#o.stateDir, id);
      // Cheap checks first (one stat each), since every thread runs this over every folder: a fresh lease is a live
      // watcher's, and a worker reported final whose reported.json has not changed since is settled.
      const lease = statSync(paths.lease, { throwIfNoEntry: false });
      if (lease !== undefined && now - lease.mtimeMs < this.#leaseStaleMs) continue;
      const reportedAt = statSync(paths.reported, { throwIfNoEntry: false })?.mtimeMs;
      if (reportedAt !== undefined && this.#settled.get(id) === reportedAt) {
        settled.set(id, reportedAt);
        continue;
      }
      const reported = readJson<WorkerState>(paths.reported);
      if (reported !== undefined && isFinalState(reported)) {
        if (reportedAt !== undefined) settled.set(id, reportedAt);
        continue;
      }
      const meta = readMeta(paths);
      if (meta === undefined || !sameOwner(meta.owner, this.#o.owner)) continue;
      if (!this.#acquire(paths)) continue;
      this.#watched.set(id, { reported: reported ?? { phase: 'Creating' }, lastBeat: Date.now(), meta, indexed: NOT_INDEXED });
      this.#o.logger.debug('process provider: adopted worker', { workerId: id });
    }
    this.#settled = settled;
  }

  #collectGarbage(now: number): void {
    const discarded = discardAbandoned(this.#o.stateDir, now);
    if (discarded.claims.length + discarded.unrecorded.length + discarded.trash > 0) {
      this.#o.logger.info('process provider: removed folders of creates that never recorded a worker', { ...discarded });
    }
    for (const id of this.#ids()) {
      if (this.#watched.has(id)) continue;
      const paths = workerPaths(this.#o.stateDir, id);
      // finishedAt (a stat) first: only folders finished long enough ago are worth reading.
      const at = finishedAt(paths);
      if (at === undefined || now - at <= this.#o.retainFinishedMs) continue;
      const meta: WorkerMeta | undefined = readMeta(paths);
      if (meta === undefined || !sameOwner(meta.owner, this.#o.owner)) continue;
      if (!isFinalState(observeWorker(paths, meta))) continue;
      // Observing may have found a later generation's end just now.
      const end = finishedAt(paths);
      if (end === undefined || now - end <= this.#o.retainFinishedMs) continue;
      // Through the trash: a removal cut short must not leave a worker folder without its meta.json.
      discard(this.#o.stateDir, paths.dir);
      this.#o.logger.debug('process provider: removed the folder of a finished worker', { workerId: id });
    }
  }

  #ids(): string[] {
    try {
      return readdirSync(workersDir(this.#o.stateDir));
    } catch {
      return [];
    }
  }

  #holds(paths: WorkerPaths): boolean {
    try {
      return readFileSync(paths.lease, 'utf8') === this.#token;
    } catch {
      return false;
    }
  }

  #acquire(paths: WorkerPaths): boolean {
    try {
      writeFileSync(paths.lease, this.#token, { flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    }
    if (this.#holds(paths)) return true;
    try {
      if (Date.now() - statSync(paths.lease).mtimeMs < this.#leaseStaleMs) return false;
      // Renaming the stale lease away succeeds for one thread only.
      const stale = `${paths.lease}.${this.#token}.stale`;
      renameSync(paths.lease, stale);
      unlinkSync(stale);
      writeFileSync(paths.lease, this.#token, { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }

  #release(paths: WorkerPaths): void {
    if (this.#holds(paths)) {
      try {
        unlinkSync(paths.lease);
      } catch {
        // already gone
      }
    }
  }
}
