import type { EventBus, Subscription } from '../../bus/EventBus.ts';
import type { EventEnvelope } from '../../bus/EventEnvelope.ts';
import type { Logger } from '../../observability/logger.ts';
import { nextCronTime, type CronSchedule } from './cronSchedule.ts';
import type { ChangeMode } from './rotationSettings.ts';

/** A policy with its durations parsed and its credentials instance chosen. */
export interface ResolvedPolicy {
  /** Position in `secrets.rotation.policies`, for messages. */
  index: number;
  secret: string;
  credentials: string;
  intervalMs?: number;
  cron?: CronSchedule;
  jitterMs: number;
  gracePeriodMs: number;
  onEvents: string[];
  changeMode?: ChangeMode;
}

/** Longest delay setTimeout takes; longer waits are chained. */
const MAX_TIMER_MS = 2_147_483_647;
/** A failed time-based rotation is retried after this long at most (sooner for short intervals). */
const MAX_RETRY_MS = 300_000;

export interface PolicyTriggersOptions {
  policies: ResolvedPolicy[];
  bus: EventBus;
  /** The engine's own subjects: a policy listening on `ci.secret.>` must not rotate itself forever. */
  ignoreSubjects: string[];
  debounceMs: number;
  logger: Logger;
  /** Epoch ms at which the secret's current version was created; undefined when it has none. */
  lastRotatedAt(policy: ResolvedPolicy): Promise<number | undefined>;
  /** Runs one rotation; resolves true when it succeeded. Never rejects. */
  fire(policy: ResolvedPolicy, trigger: 'time' | 'event', cause?: EventEnvelope): Promise<boolean>;
}

/**
 * Time and event triggers of the rotation policies. Time: the next rotation is due `interval` after the current
 * version was created (or at the next cron time after it), plus a random jitter, so the schedule survives restarts
 * and a rotation missed while the host was down happens at start. Event: an event on one of the policy's subject
 * patterns rotates the secret; further events within `debounceMs` join that rotation. Every timer is unref'd.
 */
export class PolicyTriggers {
  readonly #o: PolicyTriggersOptions;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #subscriptions: Subscription[] = [];
  readonly #eventPending = new Set<number>();
  #stopped = false;

  constructor(options: PolicyTriggersOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    for (const policy of this.#o.policies) {
      if (policy.intervalMs !== undefined || policy.cron !== undefined) void this.#arm(policy, 0);
      for (const pattern of policy.onEvents) {
        const sub = this.#o.bus.subscribe(pattern, (event) => this.#onEvent(policy, event));
        this.#subscriptions.push(sub);
        await sub.ready;
      }
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const sub of this.#subscriptions.splice(0)) sub.unsubscribe();
  }

  #onEvent(policy: ResolvedPolicy, event: EventEnvelope): void {
    if (this.#stopped || this.#o.ignoreSubjects.includes(event.busSubject) || this.#eventPending.has(policy.index)) return;
    this.#eventPending.add(policy.index);
    this.#after(this.#o.debounceMs, () => {
      this.#eventPending.delete(policy.index);
      void this.#o.fire(policy, 'event', event);
    });
  }

  /** Schedules the next time-based rotation, not before `notBefore` (epoch ms). */
  async #arm(policy: ResolvedPolicy, notBefore: number): Promise<void> {
    if (this.#stopped) return;
    let last: number | undefined;
    try {
      last = await this.#o.lastRotatedAt(policy);
    } catch (error) {
      const retryMs = Math.min(policy.intervalMs ?? MAX_RETRY_MS, MAX_RETRY_MS);
      this.#o.logger.warn({ name: policy.secret, credentials: policy.credentials, policy: policy.index, retryMs, err: describe(error) }, 'rotation policy: cannot read the secret\'s versions; retrying');
      this.#after(retryMs, () => void this.#arm(policy, 0));
      return;
    }
    const now = Date.now();
    let due: number;
    if (policy.intervalMs !== undefined) {
      due = (last ?? now) + policy.intervalMs;
    } else {
      const next = nextCronTime(policy.cron as CronSchedule, new Date(last ?? now));
      if (next === undefined) {
        this.#o.logger.error({ name: policy.secret, policy: policy.index }, 'rotation policy: the cron schedule never matches; no time-based rotation');
        return;
      }
      due = next.getTime();
    }
    const at = Math.max(due, notBefore, now) + Math.floor(Math.random() * (policy.jitterMs + 1));
    this.#after(at - now, async () => {
      const ok = await this.#o.fire(policy, 'time');
      const retryMs = Math.min(Math.max(policy.intervalMs ?? MAX_RETRY_MS, 1_000), MAX_RETRY_MS);
      await this.#arm(policy, ok ? 0 : Date.now() + retryMs);
    });
  }

  #after(ms: number, fn: () => void | Promise<void>): void {
    if (this.#stopped) return;
    const step = Math.min(Math.max(ms, 0), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#stopped) return;
      if (ms > MAX_TIMER_MS) this.#after(ms - MAX_TIMER_MS, fn);
      else void fn();
    }, step);
    timer.unref();
    this.#timers.add(timer);
  }
}

function describe(error: unknown): { code?: string; message: string } {
  const e = error as { code?: unknown; message?: unknown };
  return { ...(typeof e?.code === 'string' ? { code: e.code } : {}), message: typeof e?.message === 'string' ? e.message : String(error) };
}
