import { hostError } from '../../errors.ts';

/** A secret whose new version a worker must be restarted onto. */
export interface RestartTarget {
  credentials: string;
  name: string;
}

interface PendingRestart {
  targets: Map<string, RestartTarget>;
  correlationId: string | undefined;
  timer: NodeJS.Timeout;
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Coalesces worker restarts: the first request for a worker opens a window of `debounceMs`; every request for that
 * worker within the window joins it, and when it closes the worker is restarted once, with the material of every
 * secret that asked. The window is fixed (not extended by later requests), so rotations arriving faster than it
 * still restart a worker at most once per window and never starve it.
 */
export class RestartCoalescer {
  readonly #debounceMs: number;
  readonly #restart: (workerId: string, targets: RestartTarget[], correlationId: string | undefined) => Promise<void>;
  readonly #pending = new Map<string, PendingRestart>();
  #restarts = 0;
  #stopped = false;

  constructor(options: { debounceMs: number; restart: (workerId: string, targets: RestartTarget[], correlationId: string | undefined) => Promise<void> }) {
    this.#debounceMs = options.debounceMs;
    this.#restart = options.restart;
  }

  /** Restarts done (or attempted) so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Resolves once the restart that covers this request has finished; rejects with its error. */
  schedule(workerId: string, target: RestartTarget, correlationId?: string): Promise<void> {
    if (this.#stopped) return Promise.reject(hostError('HOST_ERR_ROTATION_STOPPED', 'the rotation engine is stopping: no restart is scheduled', { details: { workerId } }));
    const key = `${target.credentials}/${target.name}`;
    const open = this.#pending.get(workerId);
    if (open !== undefined) {
      open.targets.set(key, target);
      return open.promise;
    }
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Callers may not wait (a stop drops the window): an unobserved rejection must not crash the host.
    promise.catch(() => undefined);
    // Not unref'd: a rotation is waiting for this restart, and the window is short and cleared at stop.
    const timer = setTimeout(() => void this.#fire(workerId), this.#debounceMs);
    this.#pending.set(workerId, { targets: new Map([[key, target]]), correlationId, timer, promise, resolve, reject });
    return promise;
  }

  /** Drops every open window; their waiters get HOST_ERR_ROTATION_STOPPED (the journal redoes the step at next start). */
  stop(): void {
    this.#stopped = true;
    for (const [workerId, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(hostError('HOST_ERR_ROTATION_STOPPED', 'the rotation engine stopped before the coalesced restart ran', { details: { workerId } }));
    }
    this.#pending.clear();
  }

  async #fire(workerId: string): Promise<void> {
    const p = this.#pending.get(workerId);
    if (p === undefined) return;
    this.#pending.delete(workerId);
    this.#restarts++;
    try {
      await this.#restart(workerId, [...p.targets.values()], p.correlationId);
      p.resolve();
    } catch (error) {
      p.reject(error);
    }
  }
}
