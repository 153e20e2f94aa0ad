/** The restart policy of an instance (`limits.restart` in the manifest). */
export interface RestartPolicyLimits {
  maxRestarts: number;
  windowMs: number;
  backoffMs: number;
  maxBackoffMs: number;
}

/**
 * Counts restarts in a sliding window. Each restart waits twice as long as the one before it in the window, from
 * `backoffMs` up to `maxBackoffMs`; asking for more than `maxRestarts` within `windowMs` means quarantine.
 */
export class RestartBudget {
  readonly #policy: RestartPolicyLimits;
  readonly #times: number[] = [];

  constructor(policy: RestartPolicyLimits) {
    this.#policy = policy;
  }

  /** The delay before the next restart, or `undefined` when the budget is spent. Records the restart. */
  next(now: number = Date.now()): number | undefined {
    const since = now - this.#policy.windowMs;
    while (this.#times.length > 0 && (this.#times[0] as number) <= since) this.#times.shift();
    if (this.#times.length >= this.#policy.maxRestarts) return undefined;
    this.#times.push(now);
    const exponent = this.#times.length - 1;
    return Math.min(this.#policy.maxBackoffMs, this.#policy.backoffMs * 2 ** exponent);
  }

  /** Restarts counted in the current window. */
  get used(): number {
    return this.#times.length;
  }
}
