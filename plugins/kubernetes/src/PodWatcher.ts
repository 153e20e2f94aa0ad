import { makeInformer, type CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { isFinalState, type PluginLogger, type WorkerEvent, type WorkerState } from '@worker-manager/plugin-sdk';
import type { Keys } from './names.ts';
import { exitCodeOf, stateOfPod } from './podState.ts';

export interface PodWatcherOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  /** `key=value,...` selecting this instance's pods. */
  labelSelector: string;
  keys: Keys;
  logger: PluginLogger;
  emit(event: WorkerEvent): void;
  pendingTimeoutMs: number;
  /** Decides a worker's final state itself (pending timeout, deadline): records it on the pod and stops the pod. */
  fail(pod: V1Pod, reason: string): Promise<void>;
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A watch that ran this long since its last failure was healthy: its next failure is retried after BACKOFF_MIN_MS. */
const BACKOFF_RESET_MS = 60_000;
const SWEEP_MS = 1_000;
/** A kubelet enforces activeDeadlineSeconds at its next sync; past this slack the plugin stops the pod itself. */
const DEADLINE_SLACK_MS = 2_000;

/**
 * One informer (list, then watch from its resourceVersion; a 410 Gone re-lists) over the instance's pods. It turns
 * each change into worker events, and a sweep fails pods Pending past `pendingTimeoutMs` or running past their
 * `activeDeadlineSeconds` (which the kubelet normally enforces; the plugin is the backstop). Watch errors restart the
 * informer with exponential backoff.
 */
export class PodWatcher {
  readonly #o: PodWatcherOptions;
  readonly #informer: ReturnType<typeof makeInformer<V1Pod>>;
  /** Last state reported per worker id: what a change is compared with. */
  readonly #last = new Map<string, WorkerState>();
  /** Pods the sweep already failed (by uid), so it asks once. */
  readonly #failing = new Set<string>();
  /** Who waits for a pod (by uid) to leave the API: see {@link whenGone}. */
  readonly #goneWaiters = new Map<string, Set<(pod: V1Pod) => void>>();
  #backoffMs = BACKOFF_MIN_MS;
  #lastFailureAt = 0;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: PodWatcherOptions) {
    this.#o = options;
    this.#informer = makeInformer<V1Pod>(
      options.kubeConfig,
      `/api/v1/namespaces/${options.namespace}/pods`,
      () => options.core.listNamespacedPod({ namespace: options.namespace, labelSelector: options.labelSelector }),
      options.labelSelector,
    );
    this.#informer.on('add', (pod) => this.#seen(pod, true));
    this.#informer.on('update', (pod) => this.#seen(pod, false));
    this.#informer.on('delete', (pod) => this.#deleted(pod));
    this.#informer.on('error', (error: unknown) => this.#restartLater(error));
  }

  start(): void {
    this.#run();
    this.#sweep = setInterval(() => this.#sweepPods(), SWEEP_MS);
    this.#sweep.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#sweep);
    void this.#informer.stop().catch(() => {});
  }

  /** Records the state createWorker (or restart) answered, so the next change is reported from there. */
  track(workerId: string, state: WorkerState): void {
    this.#last.set(workerId, state);
  }

  /** Forgets a worker the plugin ended itself (terminate emits its own events). */
  forget(workerId: string): void {
    this.#last.delete(workerId);
  }

  /**
   * Resolves with the pod's last version once the informer sees the pod of `uid` deleted. It never resolves for a pod
   * the informer did not know, or while its watch is down: the caller reads the pod too. `cancel` drops the wait.
   */
  whenGone(uid: string): { promise: Promise<V1Pod>; cancel(): void } {
    let resolve: (pod: V1Pod) => void = () => {};
    const promise = new Promise<V1Pod>((r) => (resolve = r));
    const waiters = this.#goneWaiters.get(uid) ?? new Set();
    this.#goneWaiters.set(uid, waiters);
    waiters.add(resolve);
    return {
      promise,
      cancel: () => {
        waiters.delete(resolve);
        if (waiters.size === 0 && this.#goneWaiters.get(uid) === waiters) this.#goneWaiters.delete(uid);
      },
    };
  }

  #run(): void {
    if (this.#stopped) return;
    // client-node's stop() aborts only a watch that is already connected: one still connecting at stop() would
    // connect afterwards and stream on, so a start that ends after the stop stops it again.
    this.#informer.start().then(
      () => (this.#stopped ? this.#informer.stop() : undefined),
      (error: unknown) => this.#restartLater(error),
    );
  }

  #restartLater(error: unknown): void {
    if (this.#stopped) return;
    // Not reset on the informer's 'connect': client-node emits it before it lists or watches, so it would hold the
    // backoff at its minimum against an apiserver that is down. Only a stretch without failures tells a healthy watch.
    const now = Date.now();
    if (now - this.#lastFailureAt > BACKOFF_RESET_MS) this.#backoffMs = BACKOFF_MIN_MS;
    this.#lastFailureAt = now;
    this.#o.logger.warn('kubernetes provider: pod watch failed, restarting', { error: error instanceof Error ? error.message : String(error), backoffMs: this.#backoffMs });
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.#run(), this.#backoffMs);
    this.#retry.unref();
    this.#backoffMs = Math.min(BACKOFF_MAX_MS, this.#backoffMs * 2);
  }

  #workerId(pod: V1Pod): string | undefined {
    return pod.metadata?.labels?.[this.#o.keys.workerId];
  }

  /** A pod the plugin is deleting itself: terminate and restart emit what they mean. */
  #stopping(pod: V1Pod): boolean {
    return pod.metadata?.annotations?.[this.#o.keys.stop] !== undefined;
  }

  #seen(pod: V1Pod, added: boolean): void {
    const workerId = this.#workerId(pod);
    if (workerId === undefined || this.#stopping(pod)) return;
    const state = stateOfPod(pod, this.#o.keys);
    const last = this.#last.get(workerId);
    this.#last.set(workerId, state);
    // A pod found by the first list (or made by another thread) has no history here: nothing changed that we saw.
    if (last === undefined && added) return;
    const old = last ?? { phase: 'Creating' };
    if (JSON.stringify(old) === JSON.stringify(state) || isFinalState(old)) return;
    const timestamp = new Date().toISOString();
    this.#o.emit({ type: 'WorkerStateChanged', workerId, oldState: old, newState: state, timestamp });
    if (state.phase === 'Terminated') {
      const exitCode = state.exitCode ?? exitCodeOf(pod);
      this.#o.emit(exitCode === undefined ? { type: 'WorkerTerminated', workerId, timestamp } : { type: 'WorkerTerminated', workerId, exitCode, timestamp });
    } else if (state.phase === 'Failed') {
      this.#o.emit({ type: 'WorkerFailed', workerId, reason: state.reason, timestamp });
    }
  }

  #deleted(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    for (const resolve of this.#goneWaiters.get(uid) ?? []) resolve(pod);
    this.#goneWaiters.delete(uid);
    const workerId = this.#workerId(pod);
    if (workerId === undefined) return;
    this.#failing.delete(uid);
    const last = this.#last.get(workerId);
    this.#last.delete(workerId);
    if (this.#stopping(pod) || last === undefined || isFinalState(last)) return;
    // Deleted behind the plugin's back (kubectl, its namespace deleted, garbage collection after a node loss): the
    // worker is lost, and nothing is left to read its end from.
    const timestamp = new Date().toISOString();
    const newState: WorkerState = { phase: 'Failed', reason: 'Lost' };
    this.#o.emit({ type: 'WorkerStateChanged', workerId, oldState: last, newState, timestamp });
    this.#o.emit({ type: 'WorkerFailed', workerId, reason: 'Lost', timestamp });
  }

  #sweepPods(): void {
    const now = Date.now();
    for (const pod of this.#informer.list()) {
      const uid = pod.metadata?.uid ?? '';
      if (this.#failing.has(uid) || this.#stopping(pod) || (pod.metadata?.deletionTimestamp ?? undefined) !== undefined) continue;
      const state = stateOfPod(pod, this.#o.keys);
      let reason: string | undefined;
      const created = pod.metadata?.creationTimestamp === undefined ? now : new Date(pod.metadata.creationTimestamp).getTime();
      if (state.phase === 'Starting' && state.pendingReason !== 'HealthCheck' && pod.status?.phase !== 'Running' && now - created > this.#o.pendingTimeoutMs) {
        reason = state.pendingReason ?? 'PendingTimeout';
      }
      const deadline = pod.spec?.activeDeadlineSeconds;
      const started = pod.status?.startTime;
      if (reason === undefined && !isFinalState(state) && deadline !== undefined && started !== undefined) {
        if (now > new Date(started).getTime() + deadline * 1_000 + DEADLINE_SLACK_MS) reason = 'DeadlineExceeded';
      }
      if (reason === undefined) continue;
      this.#failing.add(uid);
      this.#o.fail(pod, reason).catch((error: unknown) => {
        this.#failing.delete(uid);
        this.#o.logger.warn('kubernetes provider: could not stop a failed pod', { pod: pod.metadata?.name, reason, error: error instanceof Error ? error.message : String(error) });
      });
    }
  }
}
