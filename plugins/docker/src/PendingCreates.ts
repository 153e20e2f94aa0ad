import { randomUUID } from 'node:crypto';
import type Docker from 'dockerode';
import { boundText, WorkerManagerError, type PluginLogger, type SecretMount, type WorkerEvent, type WorkerState } from '@worker-manager/plugin-sdk';
import type { Lease } from './Lease.ts';
import type { PendingMarker, PendingStore } from './PendingStore.ts';

/** Thrown at a checkpoint of a create that terminate cancelled: undo what was made. */
export class PendingCancelled extends Error {
  constructor() {
    super('the pending create was cancelled');
  }
}

/**
 * Thrown at a checkpoint of a create another task carries on or has finished (lease lost, marker of another attempt,
 * thread closing): keep what was made, it may be the worker's container.
 */
export class PendingSuperseded extends Error {
  constructor() {
    super('the pending create is carried on by another thread');
  }
}

/** Hooks of one container make-and-start, called by the task between steps. */
export interface MaterializeHooks {
  /** Throws {@link PendingCancelled} or {@link PendingSuperseded} when the create must stop. */
  checkpoint(): void;
  /** The container exists (before it is started). */
  created(containerId: string): void;
}

/** What the background creates need from the provider. */
export interface PendingCreatesDeps {
  store: PendingStore;
  /** Period of lease renewal, of the cancel check of running tasks, and of the sweep for orphaned creates. */
  beatMs: number;
  logger: PluginLogger;
  emit(event: WorkerEvent): void;
  /** True when the image must be pulled now (policy Always, or absent from the engine). */
  needsPull(image: string): Promise<boolean>;
  /** Pulls the image; a failure is a WorkerManagerError with `details.reason` `ImagePullFailed` naming the image only. */
  pull(image: string, workerId: string, auth: Docker.AuthConfig | undefined, signal: AbortSignal): Promise<void>;
  /**
   * Makes and starts the worker's container from the marker and the secrets (or adopts the one another attempt
   * made, starting it if need be); returns its id and its state right after the start. It undoes its own work when it
   * fails or is cancelled at a checkpoint, and keeps it when superseded.
   */
  materialize(marker: PendingMarker, secrets: readonly SecretMount[], hooks: MaterializeHooks): Promise<{ containerId: string; state: WorkerState }>;
}

interface Task {
  token: string;
  startedAt: number;
  lease: Lease;
  controller: AbortController;
  beat: NodeJS.Timeout | undefined;
  closing: boolean;
}

/** A create that was resumed this many times without finishing is given up (a thread that dies at each attempt). */
const MAX_ATTEMPTS = 5;

/** The state a marker stands for. */
export function pendingState(marker: PendingMarker): WorkerState {
  return marker.failure === undefined ? { phase: 'Starting', pendingReason: marker.pendingReason } : { phase: 'Failed', reason: marker.failure.reason };
}

/**
 * Creates that return to the caller before the engine is done (an image pull can take minutes): the create is
 * recorded in a {@link PendingStore} marker and finished by a task in this thread, which holds the marker's lease
 * while it runs and renews it every `beatMs`.
 *
 * - **Cancel**: terminate removes the marker (leaving a tombstone). The task notices at its next beat (aborting the
 *   pull) or checkpoint, in whatever thread it runs, and removes whatever it made; a local task is aborted at once.
 * - **Resume**: every thread sweeps the markers every `beatMs` (and at setup); a marker whose lease is free or stale
 *   belongs to a task that died (thread killed, plugin restarted) and is taken over under a new attempt token,
 *   without the secrets, which only that task had: a worker created with secrets fails with `SecretsUnavailable`
 *   instead of running without them. A repeated create of the worker takes a dead task over with its own secrets.
 *   A task that was only stalled finds another token (or the marker gone without a tombstone) and stops, keeping
 *   what it made: the containers of one create share its name, so the engine lets one exist and the other attempt
 *   adopts it.
 * - **Failure**: the marker keeps `Failed{ImagePullFailed | StartFailed | SecretsUnavailable}` for status
 *   and listings until terminate removes it, and the task emits WorkerStateChanged + WorkerFailed once.
 * - **Success**: the container, made with the marker's epoch and creation time, stands for the worker; the marker
 *   goes. The task emits Starting{ImagePull} -> Starting{ContainerCreating} before making the container,
 *   WorkerCreated once it exists, and Starting{ContainerCreating} -> Running (or Starting{HealthCheck}) once it runs:
 *   nothing else tells the host, which got Starting{ImagePull} from the call. Later states come from the
 *   EventWatcher (an exit, the health check).
 */
export class PendingCreates {
  readonly #deps: PendingCreatesDeps;
  readonly #tasks = new Map<string, Task>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(deps: PendingCreatesDeps) {
    this.#deps = deps;
  }

  /** Resumes orphaned creates now, then every beat. */
  start(): void {
    this.sweep();
    this.#sweeper = setInterval(() => this.sweep(), this.#deps.beatMs);
    this.#sweeper.unref();
  }

  /** The thread shuts down: its tasks stop and give up their leases, so the next thread resumes them at once. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const task of this.#tasks.values()) {
      task.closing = true;
      clearInterval(task.beat);
      task.lease.release();
      task.controller.abort();
    }
    this.#tasks.clear();
  }

  read(workerId: string): PendingMarker | undefined {
    return this.#deps.store.read(workerId);
  }

  list(): PendingMarker[] {
    return this.#deps.store.list();
  }

  /** Claims the id for a new create and finishes it in the background; false when the id is claimed already. */
  accept(marker: PendingMarker, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): boolean {
    if (this.#closed) return false;
    const lease = this.#deps.store.claim(marker);
    if (lease === undefined) return false;
    this.#run(marker, lease, secrets, auth);
    return true;
  }

  /** A repeated create of a pending worker: if the task of its create died, carry it on with this call's secrets. */
  takeOver(workerId: string, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): void {
    if (this.#closed || this.#tasks.has(workerId)) return;
    const lease = this.#deps.store.lease(workerId);
    if (lease.acquire()) this.#resume(workerId, lease, secrets, auth);
  }

  /**
   * Cancels a pending create (terminate): removes its marker, so that its task, in whatever thread, stops and removes
   * what it made. Returns the marker it had, if any.
   */
  cancel(workerId: string): PendingMarker | undefined {
    const marker = this.#deps.store.read(workerId);
    if (marker !== undefined || this.#deps.store.ids().includes(workerId)) this.#deps.store.cancel(workerId);
    this.#tasks.get(workerId)?.controller.abort();
    return marker;
  }

  /** Takes over every create whose task died (lease free or stale), and drops claims that never got a marker. */
  sweep(): void {
    if (this.#closed) return;
    const { store } = this.#deps;
    store.expireTombstones();
    for (const workerId of store.ids()) {
      if (this.#tasks.has(workerId)) continue;
      const marker = store.read(workerId);
      if (marker === undefined) {
        store.removeAbandonedClaim(workerId);
        continue;
      }
      if (marker.failure !== undefined) continue;
      const lease = store.lease(workerId);
      if (lease.acquire()) this.#resume(workerId, lease, [], undefined);
    }
  }

  #resume(workerId: string, lease: Lease, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): void {
    const found = this.#deps.store.read(workerId);
    const marker = found === undefined ? undefined : { ...found, token: randomUUID(), attempts: found.attempts + 1 };
    if (found === undefined || marker === undefined || marker.failure !== undefined || !this.#deps.store.update(marker, found.token)) {
      lease.release();
      return;
    }
    this.#deps.logger.info('docker provider: resuming a pending create', {
      workerId,
      image: marker.image,
      attempt: marker.attempts,
      pendingReason: marker.pendingReason,
      withSecrets: secrets.length > 0 || auth !== undefined,
    });
    this.#run(marker, lease, secrets, auth);
  }

  #run(marker: PendingMarker, lease: Lease, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): void {
    const { workerId } = marker;
    const task: Task = { token: marker.token, startedAt: Date.now(), lease, controller: new AbortController(), beat: undefined, closing: false };
    task.beat = setInterval(() => {
      // Renewing keeps other threads from resuming it; a create cancelled or carried on elsewhere stops its pull.
      if (!lease.renew() || this.#verdict(task, workerId) !== 'ours') task.controller.abort();
    }, this.#deps.beatMs);
    task.beat.unref();
    this.#tasks.set(workerId, task);
    void this.#create(task, marker, secrets, auth).finally(() => {
      clearInterval(task.beat);
      if (this.#tasks.get(workerId) === task) this.#tasks.delete(workerId);
      if (!task.closing) lease.release();
    });
  }

  async #create(task: Task, marker: PendingMarker, secrets: readonly SecretMount[], auth: Docker.AuthConfig | undefined): Promise<void> {
    const { store } = this.#deps;
    const { workerId, image } = marker;
    const checkpoint = (): void => {
      const verdict = this.#verdict(task, workerId);
      if (verdict === 'cancelled') throw new PendingCancelled();
      if (verdict === 'superseded') throw new PendingSuperseded();
    };
    let current = marker;
    try {
      if (current.attempts > MAX_ATTEMPTS) {
        this.#fail(current, 'CreateAttemptsExceeded', `gave up creating worker '${workerId}' after ${MAX_ATTEMPTS} attempts whose plugin threads died`);
        return;
      }
      if (current.secretNames.length > 0 && secrets.length === 0) {
        this.#fail(
          current,
          'SecretsUnavailable',
          `the create of worker '${workerId}' was interrupted and its secrets (${current.secretNames.join(', ')}) are not kept on disk; create it again to run it with them`,
        );
        return;
      }
      if (current.pendingReason === 'ImagePull') {
        if (await this.#deps.needsPull(image)) {
          if (current.registryAuth && auth === undefined) {
            this.#fail(current, 'SecretsUnavailable', `the pull of image '${image}' for worker '${workerId}' was interrupted and its registry credentials are not kept on disk; create it again`);
            return;
          }
          await this.#deps.pull(image, workerId, auth, task.controller.signal);
        }
        checkpoint();
        current = { ...current, pendingReason: 'ContainerCreating' };
        if (!store.update(current)) throw new PendingCancelled();
        this.#changed(workerId, { phase: 'Starting', pendingReason: 'ImagePull' }, { phase: 'Starting', pendingReason: 'ContainerCreating' });
      }
      const { containerId, state } = await this.#deps.materialize(current, secrets, {
        checkpoint,
        created: (id) => this.#deps.emit({ type: 'WorkerCreated', workerId, providerRef: id, timestamp: new Date().toISOString() }),
      });
      // The container stands for the worker from now on. A final state (it exited at once) is the EventWatcher's to
      // report, from the container's `die`; a terminate that came meanwhile reports its own.
      if (store.finish(workerId, task.token) && (state.phase === 'Running' || state.phase === 'Starting')) {
        this.#changed(workerId, { phase: 'Starting', pendingReason: 'ContainerCreating' }, state);
      }
      this.#deps.logger.info('docker provider: worker started after its image pull', { workerId, container: containerId.slice(0, 12), attempts: current.attempts });
    } catch (error) {
      const verdict = this.#verdict(task, workerId);
      if (task.closing) return;
      if (error instanceof PendingCancelled || verdict === 'cancelled') {
        this.#deps.logger.info('docker provider: pending create cancelled', { workerId });
        return;
      }
      if (error instanceof PendingSuperseded || verdict === 'superseded') {
        this.#deps.logger.warn('docker provider: another thread carries on a pending create', { workerId });
        return;
      }
      const pullFailed = error instanceof WorkerManagerError && error.details?.['reason'] === 'ImagePullFailed';
      this.#fail(current, pullFailed ? 'ImagePullFailed' : 'StartFailed', error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * Whether the task still owns its create: `cancelled` when terminate removed the marker since the task began,
   * `superseded` when another attempt owns it (or finished it: marker gone without a tombstone) or the thread closes.
   */
  #verdict(task: Task, workerId: string): 'ours' | 'cancelled' | 'superseded' {
    if (task.closing) return 'superseded';
    const current = this.#deps.store.read(workerId);
    if (current === undefined) return this.#deps.store.cancelledSince(workerId, task.startedAt) ? 'cancelled' : 'superseded';
    return current.token === task.token && task.lease.holds() ? 'ours' : 'superseded';
  }

  /** Records the failure in the marker (unless the create was cancelled meanwhile) and reports it once. */
  #fail(marker: PendingMarker, reason: string, text: string): void {
    // Kept in the marker, logged, and reported by every status call: bounded like any message that may quote input.
    const message = boundText(text);
    const failed: PendingMarker = { ...marker, failure: { reason, message, at: new Date().toISOString() } };
    if (!this.#deps.store.update(failed)) {
      this.#deps.logger.info('docker provider: pending create cancelled or carried on elsewhere; its failure is not recorded', { workerId: marker.workerId, reason });
      return;
    }
    this.#deps.logger.warn('docker provider: worker failed before its container was made', { workerId: marker.workerId, image: marker.image, reason, message });
    const timestamp = new Date().toISOString();
    this.#changed(marker.workerId, { phase: 'Starting', pendingReason: marker.pendingReason }, { phase: 'Failed', reason }, timestamp);
    this.#deps.emit({ type: 'WorkerFailed', workerId: marker.workerId, reason, timestamp });
  }

  #changed(workerId: string, oldState: WorkerState, newState: WorkerState, timestamp = new Date().toISOString()): void {
    this.#deps.emit({ type: 'WorkerStateChanged', workerId, oldState, newState, timestamp });
  }
}
