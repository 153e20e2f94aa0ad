import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';
import { classify, isRetryable, toWorkerError, type CallFacts, type Failure } from './awsError.ts';
import type { ResolvedConfig } from './config.ts';

/** Counts since the thread started, logged with every retry. */
export interface CallStats {
  calls: number;
  retries: number;
  throttled: number;
}

/** One attempt of an AWS call, given the attempt's abort signal. */
export type Attempt<T> = (abortSignal: AbortSignal) => Promise<T>;

/**
 * Sends AWS calls with the plugin's own retry policy (the SDK's is off, `maxAttempts: 1`, so that every retry is
 * counted and logged here): throttling, 5xx, a per-attempt timeout and connection failures are retried with
 * exponential backoff and full jitter; everything else fails at once. RunTask carries the same clientToken on every
 * attempt, so a retried start after a lost answer is recognised by ECS and starts nothing more.
 */
export class AwsCaller {
  readonly #config: ResolvedConfig;
  readonly #logger: PluginLogger;
  readonly stats: CallStats = { calls: 0, retries: 0, throttled: 0 };

  constructor(config: ResolvedConfig, logger: PluginLogger) {
    this.#config = config;
    this.#logger = logger;
  }

  async send<T>(attemptCall: Attempt<T>, facts: Omit<CallFacts, 'attempts'>, signal?: AbortSignal): Promise<T> {
    const { maxAttempts } = this.#config.retry;
    for (let attempt = 1; ; attempt += 1) {
      if (signal?.aborted === true) throw aborted(facts, attempt - 1);
      const deadline = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        deadline.abort();
      }, this.#config.requestTimeoutMs);
      const abortSignal = signal === undefined ? deadline.signal : AbortSignal.any([signal, deadline.signal]);
      this.stats.calls += 1;
      let failure: Failure;
      let error: unknown;
      try {
        return await attemptCall(abortSignal);
      } catch (caught) {
        if (isAborted(signal)) throw aborted(facts, attempt);
        error = caught;
        failure = classify(caught, timedOut);
      } finally {
        clearTimeout(timer);
      }
      if (failure.kind === 'throttled') this.stats.throttled += 1;
      if (!isRetryable(failure) || attempt >= maxAttempts) throw toWorkerError(error, failure, { ...facts, attempts: attempt });
      const delayMs = this.#backoff(attempt);
      this.stats.retries += 1;
      this.#logger.warn('AWS call retried', {
        operation: facts.operation,
        ...(facts.workerId === undefined ? {} : { workerId: facts.workerId }),
        attempt,
        reason: failure.kind,
        awsError: (error as { name?: string }).name,
        delayMs,
        retriesTotal: this.stats.retries,
        throttledTotal: this.stats.throttled,
      });
      await sleep(delayMs, signal);
    }
  }

  #backoff(attempt: number): number {
    const { baseDelayMs, maxDelayMs } = this.#config.retry;
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return Math.max(1, Math.round(Math.random() * ceiling));
  }
}

// A function, so that TypeScript does not keep the narrowing of the check before the await.
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function aborted(facts: Omit<CallFacts, 'attempts'>, attempts: number): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_TIMEOUT', `${facts.operation} was aborted by the caller`, { details: { operation: facts.operation, attempts, reason: 'aborted' } });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
