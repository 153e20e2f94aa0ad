import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { OwnerLabels, PluginLogger, WorkerEvent, WorkerState } from '@worker-manager/plugin-sdk';
import { exitedState, HEALTH_CHECK_PENDING, settleOomFlag, stateFromInspect, type InspectState } from './containerState.ts';
import { statusOf } from './dockerErrors.ts';
import { ownerFilter, type LabelKeys } from './labels.ts';
import type { Lease } from './Lease.ts';

/** One message of the engine's `/events` stream (the fields used here). */
interface EngineEvent {
  Type?: string;
  Action?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Settings of an {@link EventWatcher}. */
export interface EventWatcherOptions {
  docker: Docker;
  keys: LabelKeys;
  owner: OwnerLabels;
  lease: Lease;
  markersDir: string;
  logger: PluginLogger;
  emit(event: WorkerEvent): void;
  stopUnhealthy: boolean;
  /** Runs when this thread holds the lease: at once, then every `cleanupIntervalMs` (0: only once). */
  cleanup(): Promise<unknown>;
  cleanupIntervalMs: number;
  /** The lease's stale time: on taking over, events this far back are replayed. */
  leaseStaleMs: number;
  /** Grace period of a stop at a worker's timeoutMs. */
  stopGraceMs: number;
}

/** Content of the marker file of a container stopped at its deadline. */
export const DEADLINE_MARKER = 'deadline';
/** Marker content after a restart: `restart-done:<ms>`; dies until then were the restart's own. */
export const RESTART_DONE = 'restart-done:';

const BEAT_MS = 1_000;
const RECONNECT_MAX_MS = 5_000;

/**
 * Turns the engine's `/events` stream into WorkerEvents, for one thread of the instance at a time (the holder of the
 * events lease; the others retry every second, so a dead holder is replaced within the lease's stale time).
 *
 * - `die` of a container no terminate/restart marked -> WorkerStateChanged + WorkerTerminated (exit 0) or
 *   WorkerFailed (`OOMKilled` after an `oom` event, `Unhealthy`, `ExitCode<n>`): a container killed behind the
 *   plugin's back becomes Failed here, not through polling.
 * - `health_status: healthy` -> Starting{HealthCheck} -> Running; `unhealthy` -> Failed{Unhealthy}, and the
 *   container is killed when `stopUnhealthy`.
 *
 * Pause and resume are reported by the calls that make them: under load the engine can repeat a late `pause` /
 * `unpause` pair from containerd after the call's own, which would report the worker paused twice.
 *
 * It also enforces `spec.timeoutMs` (label `timeout-ms`): a timer from the container's start (on taking the lease,
 * from `inspect`; later from `start` events) stops it and reports `Failed{DeadlineExceeded}`; a marker file makes the
 * state stick for status calls on any thread.
 *
 * After a lost connection it reconnects with backoff and asks for events `since` the last one seen.
 */
export class EventWatcher {
  readonly #o: EventWatcherOptions;
  readonly #oom = new Set<string>();
  readonly #final = new Set<string>();
  readonly #healthy = new Set<string>();
  #stream: Readable | undefined;
  #timer: NodeJS.Timeout | undefined;
  #cleanupTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #leading = false;
  #since: number | undefined;
  #backoffMs = 100;
  #lastNano = 0;
  readonly #seenAtLast = new Set<string>();
  readonly #deadlines = new Map<string, NodeJS.Timeout>();

  constructor(options: EventWatcherOptions) {
    this.#o = options;
  }

  /** True while this thread holds the lease and streams events. */
  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    this.#tick();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#cleanupTimer);
    this.#stream?.destroy();
    this.#clearDeadlines();
    if (this.#leading) this.#o.lease.release();
    this.#leading = false;
  }

  #clearDeadlines(): void {
    for (const t of this.#deadlines.values()) clearTimeout(t);
    this.#deadlines.clear();
  }

  /** Arms the deadline timer of a running container that has a timeoutMs label. */
  #arm(containerId: string, workerId: string, startedAtMs: number, timeoutLabel: string | undefined): void {
    const timeoutMs = Number(timeoutLabel);
    if (timeoutLabel === undefined || !Number.isFinite(timeoutMs)) return;
    clearTimeout(this.#deadlines.get(containerId));
    const t = setTimeout(() => void this.#expire(containerId, workerId), Math.max(0, startedAtMs + timeoutMs - Date.now()));
    t.unref();
    this.#deadlines.set(containerId, t);
  }

  async #armRunning(): Promise<void> {
    const filters = ownerFilter(this.#o.keys, this.#o.owner, { [this.#o.keys.kind]: 'worker' });
    const rows = await this.#o.docker.listContainers({ filters });
    for (const row of rows) {
      const label = row.Labels[this.#o.keys.timeoutMs];
      const workerId = row.Labels[this.#o.keys.workerId];
      if (label === undefined || workerId === undefined) continue;
      const info = await this.#o.docker.getContainer(row.Id).inspect().catch(() => undefined);
      if (info?.State.Running === true) this.#arm(row.Id, workerId, Date.parse(info.State.StartedAt), label);
    }
  }

  async #expire(containerId: string, workerId: string): Promise<void> {
    this.#deadlines.delete(containerId);
    if (this.#stopped || !this.#leading) return;
    // A terminate or restart under way has its own marker and wins; a finished restart's marker does not.
    if (this.#marked(containerId, Date.now())) return;
    writeFileSync(path.join(this.#o.markersDir, containerId), DEADLINE_MARKER);
    this.#final.add(containerId);
    this.#o.logger.info('docker provider: worker reached its timeoutMs, stopping it', { workerId });
    const container = this.#o.docker.getContainer(containerId);
    try {
      await container.unpause().catch(() => {});
      await container.stop({ t: Math.ceil(this.#o.stopGraceMs / 1_000) });
    } catch (error) {
      if (statusOf(error) !== 304) this.#o.logger.warn('docker provider: deadline stop failed', { workerId, status: statusOf(error) });
    }
    const info = await container.inspect().catch(() => undefined);
    const exitCode = info?.State.ExitCode;
    const reason = 'DeadlineExceeded';
    const timestamp = new Date().toISOString();
    this.#o.emit({ type: 'WorkerStateChanged', workerId, oldState: { phase: 'Running' }, newState: { phase: 'Failed', reason, ...(exitCode === undefined ? {} : { exitCode }) }, timestamp });
    this.#o.emit({ type: 'WorkerFailed', workerId, reason, timestamp });
  }

  #tick(): void {
    if (this.#stopped) return;
    if (this.#leading) {
      if (!this.#o.lease.renew()) {
        this.#o.logger.warn('docker provider: lost the events lease');
        this.#leading = false;
        this.#stream?.destroy();
        clearTimeout(this.#cleanupTimer);
        this.#clearDeadlines();
      }
    } else if (this.#o.lease.acquire()) {
      this.#leading = true;
      // Replay the window in which the previous holder may have died unnoticed; a repeat is better than a loss.
      this.#since = Math.floor((Date.now() - this.#o.leaseStaleMs - BEAT_MS) / 1_000);
      void this.#connect();
      this.#scheduleCleanup(0);
      this.#armRunning().catch((error: unknown) =>
        this.#o.logger.warn('docker provider: could not arm worker deadlines', { error: error instanceof Error ? error.message : String(error) }),
      );
    }
    this.#timer = setTimeout(() => this.#tick(), BEAT_MS);
    this.#timer.unref();
  }

  #scheduleCleanup(delayMs: number): void {
    this.#cleanupTimer = setTimeout(() => {
      if (this.#stopped || !this.#leading) return;
      this.#o
        .cleanup()
        .catch((error: unknown) => this.#o.logger.warn('docker provider: cleanup pass failed', { error: error instanceof Error ? error.message : String(error) }))
        .finally(() => {
          if (this.#o.cleanupIntervalMs > 0) this.#scheduleCleanup(this.#o.cleanupIntervalMs);
        });
    }, delayMs);
    this.#cleanupTimer.unref();
  }

  async #connect(): Promise<void> {
    if (this.#stopped || !this.#leading) return;
    const filters = { type: ['container' as const], ...ownerFilter(this.#o.keys, this.#o.owner, { [this.#o.keys.kind]: 'worker' }) };
    let stream: Readable;
    try {
      stream = (await this.#o.docker.getEvents({ filters, ...(this.#since === undefined ? {} : { since: this.#since }) })) as unknown as Readable;
    } catch (error) {
      this.#retryConnect(error);
      return;
    }
    if (this.#stopped || !this.#leading) {
      stream.destroy();
      return;
    }
    this.#stream = stream;
    this.#backoffMs = 100;
    let buffer = '';
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line === '') continue;
        try {
          void this.#handle(JSON.parse(line) as EngineEvent);
        } catch {
          // not JSON: ignore the line
        }
      }
    });
    stream.once('error', (error) => this.#reconnectLater(stream, error));
    stream.once('end', () => this.#reconnectLater(stream, undefined));
    stream.once('close', () => this.#reconnectLater(stream, undefined));
  }

  /** Reconnects once per lost stream ('error', 'end' and 'close' may all fire for one). */
  #reconnectLater(stream: Readable, error: unknown): void {
    if (stream !== this.#stream) return;
    this.#stream = undefined;
    stream.destroy();
    if (this.#stopped || !this.#leading) return;
    this.#retryConnect(error);
  }

  #retryConnect(error: unknown): void {
    if (this.#stopped || !this.#leading) return;
    this.#o.logger.warn('docker provider: event stream ended, reconnecting', { error: error instanceof Error ? error.message : String(error ?? 'end') });
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(RECONNECT_MAX_MS, this.#backoffMs * 2);
    const t = setTimeout(() => void this.#connect(), delay);
    t.unref();
  }

  /** True when a die at `atMs` was asked for (terminate, deadline, restart), so it is not a failure to report. */
  #marked(containerId: string, atMs: number): boolean {
    let marker: string;
    try {
      marker = readFileSync(path.join(this.#o.markersDir, containerId), 'utf8');
    } catch {
      return false;
    }
    if (marker.startsWith(RESTART_DONE)) return atMs <= Number(marker.slice(RESTART_DONE.length));
    return true;
  }

  async #handle(e: EngineEvent): Promise<void> {
    if (e.Type !== 'container' || e.Action === undefined) return;
    const id = e.Actor?.ID ?? e.id;
    const attrs = e.Actor?.Attributes ?? {};
    const workerId = attrs[this.#o.keys.workerId];
    if (id === undefined || workerId === undefined) return;
    // A reconnect asks for events `since` a whole second, so some arrive twice: drop what was already handled.
    const nano = e.timeNano ?? 0;
    const key = `${id}/${e.Action}`;
    if (nano < this.#lastNano || (nano === this.#lastNano && this.#seenAtLast.has(key))) return;
    if (nano > this.#lastNano) {
      this.#lastNano = nano;
      this.#seenAtLast.clear();
    }
    this.#seenAtLast.add(key);
    this.#o.logger.debug('docker provider: engine event', { workerId, action: e.Action, container: id.slice(0, 12), timeNano: nano });
    if (e.time !== undefined) this.#since = e.time;
    const eventMs = e.timeNano !== undefined ? Math.floor(e.timeNano / 1e6) : Date.now();
    const timestamp = new Date(eventMs).toISOString();
    const action = e.Action;
    const changed = (oldState: WorkerState, newState: WorkerState): void =>
      this.#o.emit({ type: 'WorkerStateChanged', workerId, oldState, newState, timestamp });

    if (action === 'start') {
      // A started container (a restart) begins a new life: earlier outcomes no longer apply.
      this.#final.delete(id);
      this.#oom.delete(id);
      this.#healthy.delete(id);
      this.#arm(id, workerId, eventMs, attrs[this.#o.keys.timeoutMs]);
      return;
    }
    if (action === 'die' || action === 'destroy') {
      clearTimeout(this.#deadlines.get(id));
      this.#deadlines.delete(id);
    }
    if (action === 'destroy') {
      this.#oom.delete(id);
      this.#final.delete(id);
      this.#healthy.delete(id);
      return;
    }
    if (action === 'oom') {
      this.#oom.add(id);
      return;
    }
    if (action.startsWith('health_status')) {
      const status = action.slice(action.indexOf(':') + 1).trim();
      if (status === 'healthy' && !this.#healthy.has(id)) {
        this.#healthy.add(id);
        changed({ ...HEALTH_CHECK_PENDING }, { phase: 'Running' });
      } else if (status === 'unhealthy' && !this.#final.has(id) && !this.#marked(id, eventMs)) {
        this.#final.add(id);
        const reason = 'Unhealthy';
        changed(this.#healthy.has(id) ? { phase: 'Running' } : { ...HEALTH_CHECK_PENDING }, { phase: 'Failed', reason });
        this.#o.emit({ type: 'WorkerFailed', workerId, reason, timestamp });
        if (this.#o.stopUnhealthy) {
          this.#o.logger.info('docker provider: killing an unhealthy worker', { workerId });
          await this.#o.docker
            .getContainer(id)
            .kill()
            .catch(() => {});
        }
      }
      return;
    }
    if (action !== 'die' || this.#final.has(id) || this.#marked(id, eventMs)) return;
    this.#final.add(id);
    let state: WorkerState;
    try {
      const container = this.#o.docker.getContainer(id);
      const info = await settleOomFlag(await container.inspect(), () => container.inspect());
      state = stateFromInspect(info.State as unknown as InspectState);
    } catch (error) {
      if (statusOf(error) !== 404) this.#o.logger.debug('docker provider: inspect after die failed', { workerId });
      state = exitedState(Number(attrs['exitCode'] ?? -1), this.#oom.has(id), undefined);
    }
    if (this.#marked(id, eventMs)) return;
    if (state.phase !== 'Terminated' && state.phase !== 'Failed') state = exitedState(Number(attrs['exitCode'] ?? -1), this.#oom.has(id), undefined);
    if (this.#oom.has(id) && state.phase === 'Failed' && state.reason !== 'OOMKilled') state = { phase: 'Failed', reason: 'OOMKilled', ...(state.exitCode === undefined ? {} : { exitCode: state.exitCode }) };
    this.#oom.delete(id);
    changed({ phase: 'Running' }, state);
    if (state.phase === 'Terminated') {
      this.#o.emit(state.exitCode === undefined ? { type: 'WorkerTerminated', workerId, timestamp } : { type: 'WorkerTerminated', workerId, exitCode: state.exitCode, timestamp });
    } else if (state.phase === 'Failed') {
      this.#o.emit({ type: 'WorkerFailed', workerId, reason: state.reason, timestamp });
    }
  }
}
