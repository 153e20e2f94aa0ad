import type { MessagePort, Worker } from 'node:worker_threads';
import type { CallReply, CallRequest, ThreadInit } from '@worker-manager/plugin-sdk/internal';
import { Piscina } from 'piscina';
import type { StreamReader } from './StreamReader.ts';

type PiscinaOptions = NonNullable<ConstructorParameters<typeof Piscina>[0]>;
type Balancer = NonNullable<PiscinaOptions['loadBalancer']>;
type BalancerTask = Parameters<Balancer>[0];
type BalancerWorker = Parameters<Balancer>[1][number];

/** Why a thread was lost: it died on its own (`crash`, `oom`) or the sandbox killed it (`hang`, `timeout`). */
export type ThreadFaultKind = 'crash' | 'oom' | 'hang' | 'timeout';

/** A lost thread, with what is known about why. */
export interface ThreadFault {
  kind: ThreadFaultKind;
  /** The error the thread died with, if it died with one. */
  error?: unknown;
  exitCode?: number;
}

/** What the sandbox knows about one plugin thread. */
export interface ThreadState {
  readonly id: number;
  readonly pool: PluginThreadPool;
  /** Host time of the last heartbeat; 0 until the first one, which the thread sends before loading the plugin. */
  lastBeat: number;
  /** piscina tasks routed to this thread and not settled yet (timed-out ones included: they still run there). */
  inFlight: number;
  readonly streams: Set<StreamReader>;
  fault: ThreadFault | undefined;
  /** The host's end of this thread's own channel (heartbeats, events, logs); set when `$ready` carries the other end. */
  channel: MessagePort | undefined;
}

/**
 * Where a task went. Stored on the task object under piscina's queue-options symbol, which piscina hands to the load
 * balancer and which `postMessage` does not copy (symbol keys are not cloned), so routing costs no extra message.
 */
export interface TaskRoute {
  /** Set by the balancer when the task is given to a thread. */
  threadId: number | undefined;
  /** Forces the task onto one thread (control calls such as `$close`). */
  target: number | undefined;
  /**
   * Not counted as a call in flight for hang detection: boot (`$ready`) is bounded by its own deadline, and a thread
   * loading modules on a starved machine must not be mistaken for a hung one.
   */
  untracked?: boolean;
}

/** What {@link PluginThreadPool} needs. */
export interface PluginThreadPoolOptions {
  filename: string;
  workerData: ThreadInit;
  execArgv: string[] | undefined;
  env: Record<string, string>;
  threads: number;
  concurrentCallsPerThread: number;
  heapMb: number;
  /** The sandbox-wide registry of live threads (heartbeats arrive by thread id). */
  registry: Map<number, ThreadState>;
  /** Called once per thread that is lost while the pool is not being destroyed. */
  onThreadLost(thread: ThreadState): void;
}

const kRoute = Piscina.queueOptionsSymbol;

/** Attaches a route to a task object. */
export function withRoute<T extends object>(task: T, route: TaskRoute): T {
  (task as Record<symbol, unknown>)[kRoute] = route;
  return task;
}

/**
 * One generation of an instance's threads: a piscina pool plus the bookkeeping piscina does not expose (which task
 * runs on which thread, which thread is healthy). A generation is never repaired: when one of its threads is lost the
 * sandbox retires the whole generation and starts a new one after a backoff, which is what gives restarts a budget.
 */
export class PluginThreadPool {
  readonly #options: PluginThreadPoolOptions;
  readonly #piscina: Piscina;
  readonly #threads = new Map<number, ThreadState>();
  #destroying: Promise<void> | undefined;
  /** Calls whose callers are still waiting for this pool. */
  pending = 0;
  retired = false;

  constructor(options: PluginThreadPoolOptions) {
    this.#options = options;
    this.#piscina = new Piscina({
      filename: options.filename,
      name: 'default',
      minThreads: options.threads,
      maxThreads: options.threads,
      // Idle threads stay: a plugin thread is set up once and keeps its connections.
      idleTimeout: Infinity,
      concurrentTasksPerWorker: options.concurrentCallsPerThread,
      // Heartbeats, streams and plugin timers need the thread's event loop to turn between tasks; Atomics.wait
      // (piscina's default) would freeze it whenever the thread is idle.
      atomics: 'disabled',
      resourceLimits: { maxOldGenerationSizeMb: options.heapMb },
      env: options.env,
      execArgv: options.execArgv,
      workerData: options.workerData,
      recordTiming: false,
      loadBalancer: this.#balance,
    });
    // piscina emits 'error' for a thread that dies with no task on it; unhandled, that would crash the host.
    this.#piscina.on('error', () => {});
    this.#piscina.on('workerCreate', (worker: BalancerWorker) => this.#adopt(worker.id));
  }

  /** Healthy threads of this pool. */
  get size(): number {
    let n = 0;
    for (const thread of this.#threads.values()) if (thread.fault === undefined) n++;
    return n;
  }

  /** Ids of every thread piscina has started for this pool (all of them exist once the pool is constructed). */
  threadIds(): number[] {
    return this.#piscina.threads.map((worker) => worker.threadId);
  }

  /** Thread ids of live, healthy threads. */
  healthyThreadIds(): number[] {
    const out: number[] = [];
    for (const thread of this.#threads.values()) if (thread.fault === undefined) out.push(thread.id);
    return out;
  }

  run(task: CallRequest, transferList?: MessagePort[]): Promise<CallReply> {
    return this.#piscina.run(task, transferList === undefined ? undefined : { transferList }) as Promise<CallReply>;
  }

  /** Called when a routed task settles, to keep per-thread in-flight counts right. */
  release(route: TaskRoute): void {
    if (route.threadId === undefined || route.untracked === true) return;
    const thread = this.#threads.get(route.threadId);
    if (thread !== undefined) thread.inFlight--;
  }

  thread(id: number): ThreadState | undefined {
    return this.#threads.get(id);
  }

  /** The state of a thread of this pool, tracked from now on if it was not yet; undefined once it is gone. */
  track(id: number): ThreadState | undefined {
    return this.#adopt(id);
  }

  /** Terminates a thread the sandbox gave up on; its tasks reject and it is reported lost with this kind. */
  kill(id: number, kind: 'hang' | 'timeout'): void {
    const thread = this.#threads.get(id);
    if (thread === undefined || thread.fault !== undefined) return;
    thread.fault = { kind };
    this.#stopRespawning();
    const worker = this.#worker(id);
    void worker?.terminate();
  }

  /** No more threads for this generation: lost ones are not replaced, the sandbox starts a new generation instead. */
  retire(): void {
    this.retired = true;
    this.#stopRespawning();
  }

  /** Asks every healthy thread to run the plugin's `close()` (bounded), then destroys the pool. */
  async close(timeoutMs: number, closeTask: (target: number) => CallRequest): Promise<void> {
    this.retire();
    const closing = this.healthyThreadIds().map((target) => {
      const route: TaskRoute = { threadId: undefined, target, untracked: true };
      return this.#piscina.run(withRoute(closeTask(target), route)).catch(() => undefined);
    });
    if (closing.length > 0 && timeoutMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(closing), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    await this.destroy();
  }

  /** Terminates every thread now; their tasks reject. Idempotent. */
  destroy(): Promise<void> {
    if (this.#destroying === undefined) {
      this.retire();
      this.#destroying = this.#piscina.destroy().finally(() => {
        for (const [id, thread] of this.#threads) {
          thread.channel?.close();
          this.#options.registry.delete(id);
        }
        this.#threads.clear();
      });
    }
    return this.#destroying;
  }

  // Least busy healthy thread, ignoring piscina's rule that an abortable task gets a thread of its own (we do not
  // pass AbortSignals; deadlines are enforced by the sandbox, which kills the thread itself).
  readonly #balance: Balancer = (task: BalancerTask, workers: BalancerWorker[]): BalancerWorker | null => {
    const route = (task as unknown as Record<symbol, TaskRoute | null>)[kRoute] ?? null;
    let best: BalancerWorker | null = null;
    if (route !== null && route.target !== undefined) {
      for (const worker of workers) if (worker.id === route.target && !worker.terminating && !worker.destroyed) best = worker;
    } else {
      let usage = this.#options.concurrentCallsPerThread;
      for (const worker of workers) {
        if (worker.terminating || worker.destroyed || this.#threads.get(worker.id)?.fault !== undefined) continue;
        const current = worker.currentUsage;
        if (current === 0) {
          best = worker;
          break;
        }
        if (current < usage) {
          best = worker;
          usage = current;
        }
      }
    }
    if (best !== null && route !== null) {
      route.threadId = best.id;
      const thread = this.#threads.get(best.id) ?? this.#adopt(best.id);
      if (thread !== undefined && route.untracked !== true) thread.inFlight++;
    }
    return best;
  };

  #worker(id: number): Worker | undefined {
    for (const worker of this.#piscina.threads) if (worker.threadId === id) return worker;
    return undefined;
  }

  #adopt(id: number): ThreadState | undefined {
    const known = this.#threads.get(id);
    if (known !== undefined) return known;
    const worker = this.#worker(id);
    if (worker === undefined || this.#destroying !== undefined) return undefined;
    const thread: ThreadState = { id, pool: this, lastBeat: 0, inFlight: 0, streams: new Set(), fault: undefined, channel: undefined };
    this.#threads.set(id, thread);
    this.#options.registry.set(id, thread);
    let reported = false;
    const lost = (): void => {
      if (reported || this.#destroying !== undefined) return;
      reported = true;
      // After piscina's own listeners: reacting may destroy the pool, and piscina's destroy() waits for an 'exit'
      // event of every thread it still lists, which this thread, mid-'exit', would never send again.
      queueMicrotask(() => this.#options.onThreadLost(thread));
    };
    // Prepended so they run before piscina's own listeners: the fault is known (and respawning stopped) before
    // piscina rejects the thread's tasks and before it would start a replacement.
    worker.prependListener('error', (error: Error & { code?: string }) => {
      thread.fault ??= { kind: error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'oom' : 'crash', error };
      this.#stopRespawning();
      lost();
    });
    worker.prependListener('exit', (exitCode: number) => {
      thread.fault ??= { kind: 'crash', exitCode };
      this.#stopRespawning();
      lost();
      // Kept in #threads until the pool is destroyed: the rejections of its tasks still need to read its fault.
      this.#options.registry.delete(id);
    });
    return thread;
  }

  #stopRespawning(): void {
    // piscina replaces a lost thread at once and has no option to stop that; with zero min/max threads its
    // _ensureMinimumWorkers and its spawn-on-queue do nothing. The sandbox starts a new generation after a backoff.
    const options = this.#piscina.options as { minThreads: number; maxThreads: number };
    options.minThreads = 0;
    options.maxThreads = 0;
  }
}
