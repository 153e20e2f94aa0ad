import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { Logger } from '../../observability/logger.ts';
import type { ResolvedPolicy } from './PolicyTriggers.ts';
import { RestartCoalescer, type RestartTarget } from './RestartCoalescer.ts';
import type { JournalEntry } from './RotationRecord.ts';
import type { RotationReporter } from './RotationReporter.ts';
import type { ConsumerRef, RotationBroker, RotationConsumer, RotationWorkers } from './rotationPorts.ts';
import { callOptions, errorOf } from './rotationSupport.ts';

/** A lease renewal (LeaseRenewals): consumers move onto a fresh value of a leased secret, without a rotation record. */
export interface LeaseRenewal {
  id: string;
  credentials: string;
  name: string;
  correlationId?: undefined;
}

/** A worker that ended meanwhile: it needs no new material. */
const GONE = new Set(['WM_ERR_NOT_FOUND', 'WM_ERR_CONFLICT']);

/** What distribution works with. */
export interface RotationDistributorDeps {
  /** Without a broker or workers nothing is distributed (a host with no secrets consumers). */
  broker?: RotationBroker | undefined;
  workers?: RotationWorkers | undefined;
  debounceMs: number;
  logger: Logger;
  reporter: RotationReporter;
  policyFor(credentials: string, name: string): ResolvedPolicy | undefined;
  isRunning(): boolean;
}

/**
 * Moves a secret's consumers onto the version a rotation or rollback made current: file mounts replaced in place
 * (`hot`, `signal`), env consumers restarted with fresh material, coalesced per worker over `debounceMs`.
 */
export class RotationDistributor {
  readonly #d: RotationDistributorDeps;
  readonly #restarts: RestartCoalescer;

  constructor(deps: RotationDistributorDeps) {
    this.#d = deps;
    this.#restarts = new RestartCoalescer({ debounceMs: deps.debounceMs, restart: (workerId, targets, correlationId) => this.#restartWorker(workerId, targets, correlationId) });
  }

  /** Restarts the coalescer has run (or attempted). */
  get restartCount(): number {
    return this.#restarts.restarts;
  }

  /** Cancels restarts not yet due. */
  stop(): void {
    this.#restarts.stop();
  }

  /** How a consumer follows a rotation: its ref's `onRotation`, else the policy's `changeMode`, else by mount. */
  #modeOf(ref: ConsumerRef, policy: ResolvedPolicy | undefined): 'hot' | 'signal' | 'restart' | 'none' {
    const mode = ref.onRotation ?? policy?.changeMode ?? (ref.mount === 'env' ? 'restart' : 'hot');
    if (mode === 'none') return 'none';
    // An environment cannot change under a running process.
    return ref.mount === 'env' ? 'restart' : mode;
  }

  /** A ref pinned to a version id does not move; `current` (or none) and `previous` do. */
  #follows(ref: ConsumerRef): boolean {
    return ref.version === undefined || ref.version === 'current' || ref.version === 'previous';
  }

  /**
   * Hot and signal consumers get their files replaced now (awaited: a failure fails the rotation); restart consumers
   * are handed to the coalescer, whose restarts the returned promise waits for (failures are logged and audited, not
   * rolled back: the other consumers already use the new version).
   */
  async distribute(entry: JournalEntry | LeaseRenewal, policy: ResolvedPolicy | undefined): Promise<{ workers: string[]; restarts: Promise<void> }> {
    const { broker, workers } = this.#d;
    if (broker === undefined || workers === undefined) return { workers: [], restarts: Promise.resolve() };
    const byWorker = new Map<string, { tenant: string; hot: ConsumerRef[]; signal: string | undefined; restart: boolean }>();
    for (const c of broker.consumersOf(entry.credentials, entry.name)) {
      if (!this.#follows(c.ref)) continue;
      const mode = this.#modeOf(c.ref, policy);
      if (mode === 'none') continue;
      const w = byWorker.get(c.workerId) ?? { tenant: c.tenant, hot: [], signal: undefined, restart: false };
      byWorker.set(c.workerId, w);
      if (mode === 'restart') w.restart = true;
      else {
        w.hot.push(c.ref);
        if (mode === 'signal') w.signal ??= c.ref.signal ?? 'SIGHUP';
      }
    }
    const gone = new Set<string>();
    const refreshed = await Promise.allSettled(
      [...byWorker].filter(([, w]) => w.hot.length > 0).map(async ([workerId, w]) => {
        const mounts = await broker.resolve({ workerId, tenant: w.tenant, refs: w.hot, ...callOptions(entry.correlationId) });
        const files = mounts.filter((m) => m.strategy !== 'env');
        const opts: { signal?: string; correlationId?: string } = { ...callOptions(entry.correlationId) };
        if (w.signal !== undefined) opts.signal = w.signal;
        try {
          await workers.refreshSecrets(workerId, files, opts);
        } catch (error) {
          // A worker that ended meanwhile needs nothing; its consumers are forgotten when it is terminated.
          if (error instanceof WorkerManagerError && GONE.has(error.code)) {
            gone.add(workerId);
            return;
          }
          throw error;
        }
      }),
    );
    const failed = refreshed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const target: RestartTarget = { credentials: entry.credentials, name: entry.name };
    const restarts = [...byWorker]
      .filter(([, w]) => w.restart)
      .map(([workerId]) =>
        this.#restarts.schedule(workerId, target, entry.correlationId).catch(async (error: unknown) => {
          if (!this.#d.isRunning()) return;
          const failure = errorOf(error);
          this.#d.logger.error({ rotationId: entry.id, name: entry.name, workerId, err: failure }, 'restart with the rotated secret failed; the worker keeps its old environment');
          // A rotation's failed restart goes to the audit trail with its record; a lease renewal has none (logged above).
          if ('operation' in entry) await this.#d.reporter.audit(entry, failure, { workerId });
        }),
      );
    return {
      workers: [...byWorker.keys()].filter((id) => !gone.has(id)),
      restarts: Promise.all(restarts).then(() => undefined),
    };
  }

  /** The coalescer's restart: fresh material for every secret that asked, resolved now (so the newest version). */
  async #restartWorker(workerId: string, targets: RestartTarget[], correlationId: string | undefined): Promise<void> {
    const { broker, workers } = this.#d;
    if (broker === undefined || workers === undefined) return;
    const mine: RotationConsumer[] = [];
    for (const t of targets) {
      const policy = this.#d.policyFor(t.credentials, t.name);
      for (const c of broker.consumersOf(t.credentials, t.name)) {
        if (c.workerId === workerId && this.#follows(c.ref) && this.#modeOf(c.ref, policy) === 'restart') mine.push(c);
      }
    }
    const first = mine[0];
    if (first === undefined) return;
    const mounts = await broker.resolve({ workerId, tenant: first.tenant, refs: mine.map((c) => c.ref), ...callOptions(correlationId) });
    try {
      await workers.restartWithSecrets(workerId, mounts, callOptions(correlationId));
    } catch (error) {
      if (error instanceof WorkerManagerError && error.code === 'WM_ERR_NOT_FOUND') return;
      throw error;
    }
  }
}
