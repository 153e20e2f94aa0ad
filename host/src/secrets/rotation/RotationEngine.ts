import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { toWorkerManagerError, WorkerManagerError, type CredentialProviderContract, type Proxied, type SecretVersion } from '@worker-manager/plugin-sdk';
import type { EventBus } from '../../bus/EventBus.ts';
import type { EventEnvelope } from '../../bus/EventEnvelope.ts';
import type { Subjects } from '../../bus/subjects.ts';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { OperationObserver } from '../../observability/OperationObserver.ts';
import type { PluginRegistry } from '../../plugins/PluginRegistry.ts';
import type { AuditSink } from '../../security/audit/AuditSink.ts';
import { CronSyntaxError, parseCron } from './cronSchedule.ts';
import { parseDuration } from './parseDuration.ts';
import { PolicyTriggers, type ResolvedPolicy } from './PolicyTriggers.ts';
import { LeaseRenewals } from './LeaseRenewals.ts';
import { RotationDistributor } from './RotationDistributor.ts';
import { RotationJournal } from './RotationJournal.ts';
import { isFinished, publicRecord, type JournalEntry, type RotationRecord, type RotationStep, type RotationTrigger, type VersionFailure } from './RotationRecord.ts';
import { RotationReporter } from './RotationReporter.ts';
import type { RotationBroker, RotationWorkers } from './rotationPorts.ts';
import type { RotationSettings } from './rotationSettings.ts';
import { noteRetry, settleRetry } from './retryState.ts';
import { IMMEDIATE, liveVersion, RollForward } from './RollForward.ts';
import { assertNotFailed, rollbackPendingError, unfinishedRollback } from './rotationGuards.ts';
import { callOptions, currentOf as current, errorOf, recorded } from './rotationSupport.ts';

export type { RotationRecord, RotationState, RotationTrigger, VersionFailure } from './RotationRecord.ts';

/** What the engine is built from (the host's cradle). */
export interface RotationEngineDeps {
  registry: PluginRegistry;
  /** Without a broker (a host with no secrets consumers) versions still rotate; nothing is distributed. */
  broker?: RotationBroker | undefined;
  workers?: RotationWorkers | undefined;
  bus: EventBus;
  subjects: Subjects;
  hostId: string;
  stateDir: string;
  settings: RotationSettings;
  logger: Logger;
  audit?: AuditSink | undefined;
  observer?: OperationObserver | undefined;
}

/** A request to rotate one secret now. */
export interface RotateRequest {
  name: string;
  /** Credentials instance; the broker's default when absent. */
  credentials?: string;
  /** Principal id of the caller (`host:<id>` for timers and events). */
  requester: string;
  /** When given, the broker must let this tenant read the secret. */
  tenant?: string;
  correlationId?: string;
  trigger?: RotationTrigger;
}

/** A request to make the previous version active again. */
export type RollbackRequest = Omit<RotateRequest, 'trigger'>;

const ROTATE_STEPS: RotationStep[] = ['create', 'test', 'promote', 'distribute', 'grace', 'revoke'];

/** Restarts still to come; boxed, because an async function returning a bare promise would wait for it. */
interface Pending {
  restarts: Promise<void>;
}

/** A crash left a rotation before its create reached the store: there is nothing live to adopt. */
const NOTHING_LIVE = Symbol('nothing-live');

/** A version as the engine answers it: the store's metadata, plus the failure mark of a failed rotation's version. */
export type RotationVersion = SecretVersion & { failure?: VersionFailure };

/**
 * Rotates secrets without stopping the work that uses them (seed 000, "Sistema de Rotación Automática").
 *
 * A rotation creates a pending version, tests it, promotes it (the old version becomes deprecated but stays readable:
 * dual release), moves every consumer onto it (file mounts replaced in place, env consumers restarted, coalesced per
 * worker), and revokes the old version once the grace period is over. A failure before the end rolls back: the
 * previous version is promoted again, consumers follow, the new version is revoked. Every step is written to the
 * journal before it runs, so a host that dies at any step finishes the rotation (promoted already) or rolls it back
 * (not yet promoted) at its next start. The engine never sees a secret value: it moves versions; the broker resolves
 * material straight into the workers.
 *
 * The version a failed rotation created is marked failed in the journal and never becomes current again: every
 * promotion goes through one guard. A rollback step that fails is retried with exponential backoff, its attempts,
 * next attempt and last error kept on its record; while it is unfinished the secret is not rotated, and a manual
 * rollback runs its next attempt at once (it restores the version that was current before the failed rotation).
 *
 * A store with `secret.rotate.immediate` (Keycloak) makes a version live the moment it creates it and cannot make an
 * older one current again. The engine reads the capability: such a rollback rolls forward (RollForward.ts: a new
 * version, tested, replaces the one rolled back from), and a rotation whose create was cut short (a crash, a lost
 * answer) adopts the version the store made live and goes on from its test, rather than making another.
 */
export class RotationEngine {
  readonly #d: RotationEngineDeps;
  readonly #journal: RotationJournal;
  readonly #report: RotationReporter;
  readonly #distribution: RotationDistributor;
  readonly #rollForward: RollForward;
  readonly #leases: LeaseRenewals | undefined;
  readonly #locks = new Map<string, Promise<void>>();
  readonly #slotWaiters: Array<() => void> = [];
  readonly #graceTimers = new Map<string, NodeJS.Timeout>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #policySpecs: Array<{ index: number; intervalMs?: number; cron?: ReturnType<typeof parseCron> }>;
  #policies: ResolvedPolicy[] = [];
  #triggers: PolicyTriggers | undefined;
  #slotsFree: number;
  #state: 'new' | 'running' | 'stopped' = 'new';
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(deps: RotationEngineDeps) {
    this.#d = deps;
    this.#journal = new RotationJournal(path.join(deps.stateDir, 'rotation'), deps.settings.historyLimit);
    this.#slotsFree = deps.settings.maxParallel;
    this.#report = new RotationReporter({ ...deps, journal: this.#journal });
    this.#distribution = new RotationDistributor({
      broker: deps.broker, workers: deps.workers, debounceMs: deps.settings.debounceMs, logger: deps.logger, reporter: this.#report,
      policyFor: (credentials, name) => this.#policyFor(credentials, name),
      isRunning: () => this.#state === 'running',
    });
    this.#rollForward = new RollForward({
      creds: (credentials) => this.#creds(credentials),
      journal: this.#journal,
      step: (entry, step) => this.#step(entry, step),
      promote: (credentials, name, version, correlationId) => this.#promote(credentials, name, version, correlationId),
      logger: deps.logger,
    });
    const broker = deps.broker;
    if (broker !== undefined) {
      const leases = new LeaseRenewals({
        broker,
        logger: deps.logger,
        redistribute: (target) => this.#distribution.distribute(target, this.#policyFor(target.credentials, target.name)).then(async ({ workers, restarts }) => {
          await restarts;
          return { workers };
        }),
      });
      broker.watchLeases?.((credentials, name, ttl) => {
        if (this.#state === 'running') leases.leased(credentials, name, ttl);
      });
      this.#leases = leases;
    }
    this.#policySpecs = deps.settings.policies.map((p, index) => {
      const where = `secrets.rotation.policies[${index}] (secret '${p.secret}')`;
      if (p.interval !== undefined && p.cron !== undefined) throw hostError('HOST_ERR_CONFIG_INVALID', `${where}: set interval or cron, not both`, { details: { policy: index } });
      const spec: { index: number; intervalMs?: number; cron?: ReturnType<typeof parseCron> } = { index };
      if (p.interval !== undefined) {
        const ms = parseDuration(p.interval);
        if (ms === undefined) throw hostError('HOST_ERR_CONFIG_INVALID', `${where}: interval '${p.interval}' is not a duration`, { details: { policy: index } });
        spec.intervalMs = ms;
      }
      if (p.cron !== undefined) {
        try {
          spec.cron = parseCron(p.cron);
        } catch (error) {
          if (!(error instanceof CronSyntaxError)) throw error;
          throw hostError('HOST_ERR_CONFIG_INVALID', `${where}: cron '${p.cron}': ${error.message}`, { details: { policy: index } });
        }
      }
      return spec;
    });
  }

  /** Restarts the coalescer has run (or attempted) since start. */
  get restartCount(): number {
    return this.#distribution.restartCount;
  }

  /**
   * Loads the journal, finishes or rolls back every rotation a previous run left unfinished (no version is left
   * pending when this resolves), re-arms grace-period revocations, then starts the time and event triggers.
   * Call after the broker and the plugins have started.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Stops triggers and timers and waits up to `timeoutMs` for rotations in flight; what is left resumes at next start. */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.timeoutMs ?? 5_000);
    return this.#stopping;
  }

  /**
   * Rotates a secret now. Resolves once consumers are on the new version (the record is then `in_progress` at step
   * `grace` until the old version is revoked), or with a `failed` record after the automatic rollback ran (or a
   * `cancelled` one, when a rollback of the secret was still unfinished once its turn came). Throws when no rotation
   * was started: unknown secret or credentials instance, tenant not allowed, engine not running, or a rollback of the
   * secret unfinished (HOST_ERR_ROTATION_ROLLBACK_PENDING).
   */
  async rotate(req: RotateRequest): Promise<RotationRecord> {
    this.#assertRunning();
    const credentials = this.#credentialsFor(req);
    // An unknown secret is the caller's mistake, not a failed rotation: no record for it.
    await this.#creds(credentials).describe({ name: req.name }, callOptions(req.correlationId));
    const blocking = unfinishedRollback(this.#journal, credentials, req.name);
    if (blocking !== undefined) throw rollbackPendingError(blocking);
    return this.#track(this.#rotate({ ...req, credentials, trigger: req.trigger ?? 'manual' }));
  }

  /**
   * Rolls a secret back, under its lock. When a rollback of it has not finished (a failed rotation's automatic
   * rollback retrying with backoff), runs that rollback's next attempt now and answers its record: it restores the
   * version that was current before the failed rotation. Otherwise makes the previous version (stage `previous`, still
   * readable in its grace period) active again, moves consumers back onto it, and revokes the version rolled back from
   * after the grace period. Throws WM_ERR_CONFLICT when there is no previous version left, and
   * HOST_ERR_ROTATION_VERSION_FAILED when the previous version is one a failed rotation created. On a store with
   * `secret.rotate.immediate` it rolls forward instead: a new version replaces the current one, which is revoked after
   * the grace period.
   */
  async rollback(req: RollbackRequest): Promise<RotationRecord> {
    this.#assertRunning();
    const credentials = this.#credentialsFor(req);
    // An unknown secret is the caller's mistake: refused before the lock, with no record.
    await this.#creds(credentials).describe({ name: req.name }, callOptions(req.correlationId));
    return this.#track(this.#exclusive(this.#key(credentials, req.name), () => this.#manualRollback({ ...req, credentials })));
  }

  /** Versions of a secret, metadata only; a version a failed rotation created carries its `failure`. */
  async listVersions(req: { name: string; credentials?: string; tenant?: string }): Promise<RotationVersion[]> {
    const credentials = this.#credentialsFor(req);
    const versions = await this.#creds(credentials).listVersions({ name: req.name });
    return versions.map((v) => {
      const mark = this.#journal.failedVersion(credentials, req.name, v.version);
      return mark === undefined ? v : { ...v, failure: { rotationId: mark.rotationId, step: mark.step, code: mark.code, failedAt: mark.failedAt } };
    });
  }

  /**
   * Rotation and rollback records of one secret of one credentials instance (the default one when none is named),
   * oldest first, unfinished ones with their retry state. The tenant check of the other calls applies.
   */
  async rotations(req: { name: string; credentials?: string; tenant?: string }): Promise<RotationRecord[]> {
    const credentials = this.#credentialsFor(req);
    return this.#journal
      .entries()
      .filter((e) => e.credentials === credentials && e.name === req.name)
      .map(publicRecord);
  }

  /** Rotation and rollback records, oldest first (finished ones up to `historyLimit`), optionally of one secret. */
  history(name?: string): RotationRecord[] {
    return this.#journal
      .entries()
      .filter((e) => name === undefined || e.name === name)
      .map(publicRecord);
  }

  // ---------------------------------------------------------------- lifecycle

  async #start(): Promise<void> {
    if (this.#state === 'stopped') throw hostError('HOST_ERR_ROTATION_STOPPED', 'the rotation engine was stopped and cannot start again');
    this.#policies = this.#resolvePolicies();
    await this.#journal.load();
    this.#state = 'running';
    // Events a previous run wrote down but did not get out (it crashed, or the bus refused them), before anything new.
    for (const entry of this.#journal.entries()) await this.#report.flushOutbox(entry);
    await this.#recover();
    if (this.#state !== 'running') return;
    const triggers = new PolicyTriggers({
      policies: this.#policies,
      bus: this.#d.bus,
      ignoreSubjects: [this.#d.subjects.of('secretRotated'), this.#d.subjects.of('secretRotationFailed')],
      debounceMs: this.#d.settings.debounceMs,
      logger: this.#d.logger,
      lastRotatedAt: async (policy) => {
        const cur = current(await this.#creds(policy.credentials).listVersions({ name: policy.secret }));
        return cur === undefined ? undefined : Date.parse(cur.createdAt);
      },
      fire: (policy, trigger, cause) => this.#fire(policy, trigger, cause),
    });
    this.#triggers = triggers;
    await triggers.start();
    this.#d.logger.info({ policies: this.#policies.length, journal: this.#journal.file }, 'rotation engine started');
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#state = 'stopped';
    this.#triggers?.stop();
    for (const timer of this.#graceTimers.values()) clearTimeout(timer);
    this.#graceTimers.clear();
    this.#distribution.stop();
    this.#leases?.stop();
    if (this.#inflight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inflight]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (this.#inflight.size > 0) this.#d.logger.warn({ inflight: this.#inflight.size }, 'rotation engine stopped with rotations in flight; the journal resumes them at next start');
  }

  #resolvePolicies(): ResolvedPolicy[] {
    const seen = new Map<string, number>();
    return this.#d.settings.policies.map((p, index) => {
      const credentials = this.#credentialsFor({ credentials: p.credentials });
      const key = this.#key(credentials, p.secret);
      const other = seen.get(key);
      if (other !== undefined) {
        throw hostError('HOST_ERR_CONFIG_INVALID', `secrets.rotation.policies[${index}] rotates secret '${p.secret}' of '${credentials}', like policies[${other}]: one policy per secret`, { details: { policy: index } });
      }
      seen.set(key, index);
      const spec = this.#policySpecs[index] ?? { index };
      const policy: ResolvedPolicy = {
        index,
        secret: p.secret,
        credentials,
        jitterMs: p.jitterMs,
        gracePeriodMs: p.gracePeriodMs ?? this.#d.settings.defaultGracePeriodMs,
        onEvents: p.onEvents ?? [],
      };
      if (spec.intervalMs !== undefined) policy.intervalMs = spec.intervalMs;
      if (spec.cron !== undefined) policy.cron = spec.cron;
      if (p.changeMode !== undefined) policy.changeMode = p.changeMode;
      return policy;
    });
  }

  /** Unfinished journal entries, one secret at a time in start order, secrets in parallel. */
  async #recover(): Promise<void> {
    const unfinished = this.#journal.entries().filter((e) => !isFinished(e));
    if (unfinished.length === 0) return;
    this.#d.logger.warn({ unfinished: unfinished.map((e) => ({ id: e.id, name: e.name, operation: e.operation, state: e.state, step: e.step ?? null })) }, 'rotation engine: resuming rotations a previous run left unfinished');
    const bySecret = new Map<string, JournalEntry[]>();
    for (const e of unfinished.sort((a, b) => a.startedAtMs - b.startedAtMs)) {
      const key = this.#key(e.credentials, e.name);
      bySecret.set(key, [...(bySecret.get(key) ?? []), e]);
    }
    await Promise.all(
      [...bySecret.values()].map(async (entries) => {
        for (const entry of entries) {
          try {
            await this.#recoverEntry(entry);
          } catch (error) {
            // The credentials instance may be down: the entry stays unfinished and is retried at the next start.
            this.#d.logger.error({ rotationId: entry.id, name: entry.name, credentials: entry.credentials, err: errorOf(error) }, 'rotation engine: could not resume a rotation');
          }
        }
      }),
    );
  }

  async #recoverEntry(entry: JournalEntry): Promise<void> {
    const step = entry.step as RotationStep | undefined;
    if (step === 'grace' || step === 'revoke') {
      // Revocations already due are done now, so start() leaves nothing half-done that it could finish.
      if (Date.parse(entry.revokeAt ?? '') <= Date.now()) await this.#revoke(entry);
      else this.#scheduleRevoke(entry);
      return;
    }
    const policy = this.#policyFor(entry.credentials, entry.name);
    if (entry.operation === 'rollback') {
      await this.#exclusive(this.#key(entry.credentials, entry.name), () => this.#undo(entry, policy));
      return;
    }
    if (entry.state === 'pending' || step === undefined || step === 'create' || step === 'test') {
      if ((step === 'create' || step === 'test') && this.#immediate(entry.credentials)) {
        // The store made the version live when it created it: the rotation goes on with it rather than making another.
        const resumed = await this.#exclusive(this.#key(entry.credentials, entry.name), () => this.#resumeLive(entry, policy));
        if (resumed !== NOTHING_LIVE) {
          if (resumed !== undefined) await this.#finishForward(entry, resumed);
          return;
        }
      }
      const interrupted = hostError('HOST_ERR_ROTATION_INTERRUPTED', `the host stopped at step '${step ?? 'pending'}' of rotation ${entry.id}, before the new version was promoted; it is rolled back`, {
        details: { rotationId: entry.id, name: entry.name, credentials: entry.credentials, step: step ?? 'pending' },
      });
      await this.#exclusive(this.#key(entry.credentials, entry.name), () => this.#failAndRollback(entry, interrupted, policy));
      return;
    }
    // Promoted, or about to be: finish forward. Every remaining step is idempotent.
    const pending = await this.#exclusive(this.#key(entry.credentials, entry.name), async (): Promise<Pending | undefined> => {
      try {
        if (step === 'promote') await this.#promote(entry.credentials, entry.name, entry.newVersion as string, entry.correlationId);
        return await this.#distributeStep(entry, policy);
      } catch (error) {
        if (this.#state !== 'running') throw error;
        await this.#failAndRollback(entry, error, policy);
        return undefined;
      }
    });
    if (pending !== undefined) await this.#finishForward(entry, pending);
  }

  // ---------------------------------------------------------------- rotation

  async #fire(policy: ResolvedPolicy, trigger: 'time' | 'event', cause?: EventEnvelope): Promise<boolean> {
    if (this.#state !== 'running') return false;
    try {
      const record = await this.rotate({
        name: policy.secret,
        credentials: policy.credentials,
        requester: `host:${this.#d.hostId}`,
        trigger,
        ...(cause?.correlationid === undefined ? {} : { correlationId: cause.correlationid }),
      });
      return record.state !== 'failed' && record.state !== 'cancelled';
    } catch (error) {
      this.#d.logger.error({ name: policy.secret, credentials: policy.credentials, trigger, err: errorOf(error) }, 'rotation engine: triggered rotation could not start');
      return false;
    }
  }

  async #rotate(req: RotateRequest & { credentials: string; trigger: RotationTrigger }): Promise<RotationRecord> {
    const policy = this.#policyFor(req.credentials, req.name);
    const entry = this.#newEntry('rotate', req, policy?.gracePeriodMs ?? this.#d.settings.defaultGracePeriodMs, 'pending');
    this.#journal.add(entry);
    await this.#journal.save();
    await this.#report.audit(entry);
    const pending = await this.#exclusive(this.#key(req.credentials, req.name), () => this.#rotateSteps(entry, policy));
    if (pending !== undefined) await this.#finishForward(entry, pending);
    return publicRecord(entry);
  }

  /** Create, test, promote, distribute, under the secret's lock. Undefined when it failed (and was rolled back). */
  async #rotateSteps(entry: JournalEntry, policy: ResolvedPolicy | undefined): Promise<Pending | undefined> {
    const creds = this.#creds(entry.credentials);
    const opts = callOptions(entry.correlationId);
    const { name } = entry;
    try {
      this.#assertRunning();
      // Queued behind a rotation whose rollback could not finish: starting now would move stages under it.
      const blocking = unfinishedRollback(this.#journal, entry.credentials, name);
      if (blocking !== undefined) {
        await this.#cancel(entry, rollbackPendingError(blocking));
        return undefined;
      }
      const before = current(await creds.listVersions({ name }, opts));
      if (before !== undefined) entry.previousVersion = before.version;
      entry.state = 'in_progress';
      await this.#step(entry, 'create');
      entry.newVersion = await this.#create(entry);
      return await this.#testAndPromote(entry, policy);
    } catch (error) {
      // A stopping host leaves the entry at its step: the next start resumes or rolls it back from the journal.
      if (this.#state !== 'running') throw error;
      await this.#failAndRollback(entry, error, policy);
      return undefined;
    }
  }

  /**
   * Step `create`: the new version's id. On a store whose versions are live at once, a create that failed may still
   * have made one (its answer lost): that version is adopted rather than a second one made.
   */
  async #create(entry: JournalEntry): Promise<string> {
    const creds = this.#creds(entry.credentials);
    try {
      return (await creds.createPendingVersion({ name: entry.name }, callOptions(entry.correlationId))).version;
    } catch (error) {
      // Only a create whose outcome is unknown (no answer, a dropped connection) may have made a version; a refusal made none.
      if (this.#state !== 'running' || !this.#immediate(entry.credentials) || !toWorkerManagerError(error).transient) throw error;
      const live = await liveVersion(creds, entry).catch(() => undefined);
      if (live === undefined) throw error;
      this.#d.logger.warn({ rotationId: entry.id, name: entry.name, credentials: entry.credentials, version: live, err: errorOf(error) }, 'createPendingVersion failed after the store made the version live: adopting it rather than making another');
      return live;
    }
  }

  /** Steps `test`, `promote` and `distribute` of `entry.newVersion`. Returns the restarts still to come. */
  async #testAndPromote(entry: JournalEntry, policy: ResolvedPolicy | undefined): Promise<Pending> {
    const { name } = entry;
    const version = entry.newVersion as string;
    await this.#step(entry, 'test');
    const test = await this.#creds(entry.credentials).testVersion({ name, version }, callOptions(entry.correlationId));
    if (!test.ok) {
      throw new WorkerManagerError('WM_ERR_ROTATION_FAILED', `secret '${name}' version ${version} failed its test${test.reason === undefined ? '' : `: ${test.reason}`}`, {
        details: { name, credentials: entry.credentials, version, step: 'test' },
      });
    }
    await this.#step(entry, 'promote');
    await this.#promote(entry.credentials, name, version, entry.correlationId);
    return this.#distributeStep(entry, policy);
  }

  /**
   * Recovery of a rotation a crash left at `create` or `test` on a store whose versions are live at once: the version
   * the store made current is adopted and the rotation goes on from its test. NOTHING_LIVE when the create never
   * happened (then it is rolled back like on any store, with nothing to undo); undefined when it failed and was rolled
   * back. Under the secret's lock.
   */
  async #resumeLive(entry: JournalEntry, policy: ResolvedPolicy | undefined): Promise<Pending | typeof NOTHING_LIVE | undefined> {
    try {
      const live = await liveVersion(this.#creds(entry.credentials), entry);
      if (live === undefined) return NOTHING_LIVE;
      this.#d.logger.warn({ rotationId: entry.id, name: entry.name, credentials: entry.credentials, step: entry.step, version: live }, 'rotation engine: the store made the interrupted rotation\'s version live; adopting it and resuming from its test');
      entry.newVersion = live;
      return await this.#testAndPromote(entry, policy);
    } catch (error) {
      if (this.#state !== 'running') throw error;
      await this.#failAndRollback(entry, error, policy);
      return undefined;
    }
  }

  /** Step `distribute`: checks the store serves the new version, then moves consumers onto it. Returns the restarts. */
  async #distributeStep(entry: JournalEntry, policy: ResolvedPolicy | undefined): Promise<Pending> {
    await this.#step(entry, 'distribute');
    this.#d.broker?.invalidate(entry.credentials, entry.name);
    const described = await this.#creds(entry.credentials).describe({ name: entry.name }, callOptions(entry.correlationId));
    if (described.currentVersion !== entry.newVersion) {
      throw new WorkerManagerError('WM_ERR_ROTATION_FAILED', `secret '${entry.name}' serves version ${described.currentVersion ?? 'none'} as current, not the promoted version ${entry.newVersion ?? '?'}`, {
        details: { name: entry.name, credentials: entry.credentials, version: entry.newVersion, step: 'distribute' },
      });
    }
    const { workers, restarts } = await this.#distribution.distribute(entry, policy);
    entry.workers = workers;
    return { restarts };
  }

  /** After the secret's lock is released: waits for coalesced restarts, then starts the grace period. */
  async #finishForward(entry: JournalEntry, pending: Pending): Promise<void> {
    await pending.restarts;
    if (this.#state !== 'running') return;
    entry.latencyMs = Date.now() - entry.startedAtMs;
    this.#report.announce(entry, 'secretRotated');
    await this.#enterGrace(entry);
    this.#report.observe(entry, 'rotateSecret', undefined);
    await this.#report.flushOutbox(entry);
  }

  // ---------------------------------------------------------------- rollback

  /** Marks a rotation failed and runs its automatic rollback, as a record of its own. Under the secret's lock. */
  async #failAndRollback(entry: JournalEntry, error: unknown, policy: ResolvedPolicy | undefined): Promise<void> {
    const failure = errorOf(error);
    const promoted = ROTATE_STEPS.indexOf(entry.step as RotationStep) >= ROTATE_STEPS.indexOf('promote');
    entry.state = 'failed';
    entry.error = recorded(failure);
    this.#finish(entry);
    const rb = this.#newEntry('rollback', { ...entry, trigger: entry.trigger }, 0, 'rollback');
    rb.rollbackOf = entry.id;
    rb.step = this.#immediate(entry.credentials) ? 'roll-forward' : 'restore';
    rb.undoPromoted = promoted;
    entry.rollbackId = rb.id;
    if (entry.newVersion !== undefined) {
      rb.previousVersion = entry.newVersion;
      this.#journal.markFailed({
        credentials: entry.credentials, name: entry.name, version: entry.newVersion, rotationId: entry.id, step: entry.step ?? 'pending', code: failure.code, failedAt: entry.finishedAt ?? new Date().toISOString(),
      });
    }
    if (entry.previousVersion !== undefined) rb.newVersion = entry.previousVersion;
    this.#report.announce(entry, 'secretRotationFailed', { reason: `${failure.code}: ${failure.message}`, step: entry.step ?? null, rollbackId: rb.id });
    // One write: the failure, the failed version's mark, its event and the start of its rollback are durable together.
    this.#journal.add(rb);
    await this.#journal.save();
    this.#d.logger.error({ rotationId: entry.id, name: entry.name, credentials: entry.credentials, step: entry.step, err: failure }, 'rotation failed; rolling back');
    await this.#report.audit(entry);
    this.#report.observe(entry, 'rotateSecret', failure);
    await this.#report.flushOutbox(entry);
    await this.#report.audit(rb);
    await this.#undo(rb, policy);
  }

  /**
   * Automatic rollback steps, each idempotent so a crash can redo them: `restore` (the old version is current again),
   * `redistribute` (consumers follow, when the failed version had reached them), `revoke-new` (the failed version and
   * any other pending one are revoked: none was ever released for good). Under the secret's lock.
   */
  async #undo(rb: JournalEntry, policy: ResolvedPolicy | undefined): Promise<void> {
    const creds = this.#creds(rb.credentials);
    const opts = callOptions(rb.correlationId);
    const { name } = rb;
    // A retry whose timer fired while a manual rollback ran the same record to its end.
    if (isFinished(rb)) return;
    const immediate = this.#immediate(rb.credentials);
    try {
      // `restore` of an immediate store: a record journalled before the engine knew the capability rolls forward too.
      if (rb.step === 'roll-forward' || (rb.step === 'restore' && immediate)) await this.#rollForward.run(rb);
      if (rb.step === 'restore') {
        const cur = current(await creds.listVersions({ name }, opts));
        if (rb.previousVersion !== undefined && cur?.version === rb.previousVersion) {
          if (rb.newVersion === undefined) {
            throw new WorkerManagerError('WM_ERR_ROTATION_FAILED', `secret '${name}' had no version before ${rb.previousVersion}: nothing to restore`, { details: { name, credentials: rb.credentials } });
          }
          await this.#promote(rb.credentials, name, rb.newVersion, rb.correlationId);
          rb.undoPromoted = true;
        }
        await this.#step(rb, 'redistribute');
      }
      if (rb.step === 'redistribute') {
        if (rb.undoPromoted === true) {
          this.#d.broker?.invalidate(rb.credentials, name);
          const { workers, restarts } = await this.#distribution.distribute(rb, policy);
          rb.workers = workers;
          await restarts;
        }
        await this.#step(rb, 'revoke-new');
      }
      if (rb.step === 'revoke-new') {
        // Versions this rollback or its rotation marked failed (rolling forward can make more than one).
        const ours = (version: string): boolean => {
          const mark = this.#journal.failedVersion(rb.credentials, name, version);
          return mark !== undefined && (mark.rotationId === rb.id || mark.rotationId === rb.rollbackOf);
        };
        const listed = await creds.listVersions({ name }, opts);
        for (const v of listed) {
          const undone = v.version === rb.previousVersion || v.status === 'pending' || ours(v.version);
          let revoked = v.status === 'revoked';
          // Also when listed revoked: a host that died inside revokeVersion may have left it half done (AWS: tagged,
          // its AWSPENDING label kept), and revoking again is safe by contract.
          if (undone && !v.stages.includes('current')) revoked = (await creds.revokeVersion({ name, version: v.version }, opts)).status === 'revoked';
          const mark = this.#journal.failedVersion(rb.credentials, name, v.version);
          if (mark !== undefined && revoked) mark.revoked = true;
        }
        if (immediate) {
          // Keycloak drops a rotated secret when the next one is made and keeps no trace: a failed version it no longer
          // lists cannot come back.
          for (const mark of this.#journal.failedVersions()) {
            if (mark.credentials === rb.credentials && mark.name === name && ours(mark.version) && !listed.some((v) => v.version === mark.version)) mark.revoked = true;
          }
        }
      }
      rb.state = 'completed';
      rb.latencyMs = Date.now() - rb.startedAtMs;
      delete rb.error;
      settleRetry(rb);
      this.#finish(rb);
      if (rb.undoPromoted === true) this.#report.announce(rb, 'secretRotated');
      await this.#journal.save();
      await this.#report.audit(rb);
      this.#report.observe(rb, 'rollbackSecret', undefined);
      await this.#report.flushOutbox(rb);
    } catch (error) {
      if (this.#state !== 'running') throw error;
      await this.#rollbackFailed(rb, error, () => this.#exclusive(this.#key(rb.credentials, rb.name), () => this.#undo(rb, policy)));
    }
  }

  /**
   * Manual rollback, under the secret's lock: an unfinished rollback's next attempt now, or restore `previous`,
   * redistribute, and revoke the undone version after grace.
   */
  async #manualRollback(req: RollbackRequest & { credentials: string }): Promise<RotationRecord> {
    this.#assertRunning();
    const policy = this.#policyFor(req.credentials, req.name);
    const unfinished = unfinishedRollback(this.#journal, req.credentials, req.name);
    if (unfinished !== undefined) {
      // `previous` may be the very version that failed: the unfinished rollback knows what to restore instead.
      clearTimeout(this.#graceTimers.get(unfinished.id));
      this.#graceTimers.delete(unfinished.id);
      this.#d.logger.warn({ rotationId: unfinished.id, name: req.name, credentials: req.credentials, step: unfinished.step, attempts: unfinished.retry?.attempts ?? 0, requester: req.requester }, 'manual rollback: running the unfinished rollback\'s next attempt now');
      await this.#report.audit(unfinished, undefined, { retryRequestedBy: req.requester });
      await this.#undo(unfinished, policy);
      return publicRecord(unfinished);
    }
    const rb = this.#newEntry('rollback', { ...req, trigger: 'manual' }, policy?.gracePeriodMs ?? this.#d.settings.defaultGracePeriodMs, 'rollback');
    rb.undoPromoted = true;
    let restored: string | undefined;
    if (this.#immediate(req.credentials)) await this.#startRollForward(rb);
    else restored = await this.#startRestore(rb);
    await this.#journal.save();
    await this.#report.audit(rb);
    try {
      if (restored === undefined) await this.#rollForward.run(rb);
      else {
        await this.#promote(req.credentials, req.name, restored, req.correlationId);
        await this.#step(rb, 'redistribute');
      }
      this.#d.broker?.invalidate(req.credentials, req.name);
      const { workers, restarts } = await this.#distribution.distribute(rb, policy);
      rb.workers = workers;
      await restarts;
      rb.latencyMs = Date.now() - rb.startedAtMs;
      this.#report.announce(rb, 'secretRotated');
      await this.#enterGrace(rb);
      this.#report.observe(rb, 'rollbackSecret', undefined);
      await this.#report.flushOutbox(rb);
    } catch (error) {
      if (this.#state !== 'running') throw error;
      // The store refused to make a new version (a Keycloak token cannot be rotated): nothing changed, nothing to retry.
      if (restored === undefined && (await this.#refusedBeforeChange(rb, error))) {
        await this.#cancel(rb, toWorkerManagerError(error));
        throw error;
      }
      // Same steps as an automatic rollback from here: idempotent, and the undone version is revoked at once.
      rb.undoPromoted = true;
      await this.#rollbackFailed(rb, error, () => this.#exclusive(this.#key(rb.credentials, rb.name), () => this.#undo(rb, policy)));
    }
    return publicRecord(rb);
  }

  /**
   * A manual rollback that restores `previous`: journals the record at `restore` and reverts the rotations waiting to
   * revoke that version (they must not revoke it). Returns the version to restore.
   */
  async #startRestore(rb: JournalEntry): Promise<string> {
    const { cur, prev } = await this.#previousOf(rb.credentials, rb.name, rb.correlationId);
    assertNotFailed(this.#journal, rb.credentials, rb.name, prev.version, cur?.version);
    if (cur !== undefined) rb.previousVersion = cur.version;
    rb.newVersion = prev.version;
    rb.step = 'restore';
    this.#journal.add(rb);
    for (const e of this.#journal.entries()) {
      if (e === rb || isFinished(e) || e.credentials !== rb.credentials || e.name !== rb.name || e.previousVersion !== prev.version) continue;
      if (e.step !== 'grace' && e.step !== 'revoke') continue;
      clearTimeout(this.#graceTimers.get(e.id));
      this.#graceTimers.delete(e.id);
      e.state = 'rollback';
      this.#finish(e);
      await this.#report.audit(e);
    }
    return prev.version;
  }

  /**
   * A manual rollback on a store whose versions are live at once (`secret.rotate.immediate`), where `previous` cannot
   * become current again: journals the record at `roll-forward`, rolling back from the current version. Rotations in
   * their grace period are left to revoke their old versions: nothing is restored under them.
   */
  async #startRollForward(rb: JournalEntry): Promise<void> {
    const cur = current(await this.#creds(rb.credentials).listVersions({ name: rb.name }, callOptions(rb.correlationId)));
    if (cur === undefined) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${rb.name}' has no current version to roll back from`, { details: { name: rb.name, credentials: rb.credentials, reason: 'no-current-version' } });
    }
    rb.previousVersion = cur.version;
    rb.step = 'roll-forward';
    this.#journal.add(rb);
  }

  /**
   * Whether a manual roll-forward failed without changing anything: the error is a refusal (not transient), the version
   * rolled back from is still current, and the rollback made no version. Then there is nothing to undo or retry.
   */
  async #refusedBeforeChange(rb: JournalEntry, error: unknown): Promise<boolean> {
    if (toWorkerManagerError(error).transient || rb.newVersion !== undefined) return false;
    if (this.#journal.failedVersions().some((m) => m.rotationId === rb.id)) return false;
    const cur = await this.#creds(rb.credentials).listVersions({ name: rb.name }, callOptions(rb.correlationId)).then(current, () => undefined);
    return cur !== undefined && cur.version === rb.previousVersion;
  }

  /**
   * A rollback step failed (the credentials instance is restarting, a worker did not answer): the record stays
   * unfinished with the error and its retry state (attempts, next attempt, last error: the API shows them), an event
   * says so at every attempt, and it is retried with backoff while the host runs, at the next start otherwise.
   */
  async #rollbackFailed(rb: JournalEntry, error: unknown, retry: () => Promise<void>): Promise<void> {
    const failure = errorOf(error);
    rb.error = recorded(failure);
    const retryMs = noteRetry(rb, failure);
    const attempt = rb.retry?.attempts ?? 1;
    this.#report.announce(rb, 'secretRotationFailed', {
      reason: `${failure.code}: ${failure.message}`, step: rb.step ?? null, attempt, ...(rb.retry?.nextAttemptAt === undefined ? {} : { nextAttemptAt: rb.retry.nextAttemptAt }),
    });
    await this.#journal.save().catch(() => undefined);
    this.#d.logger.error({ rotationId: rb.id, name: rb.name, credentials: rb.credentials, step: rb.step, attempt, retryMs, err: failure }, 'rollback step failed; retrying');
    await this.#report.audit(rb, failure);
    this.#report.observe(rb, 'rollbackSecret', failure);
    await this.#report.flushOutbox(rb);
    this.#later(rb.id, retryMs, () => this.#track(retry()));
  }

  /**
   * A record that ends without having changed anything: `cancelled`, with the reason (a queued rotation behind an
   * unfinished rollback, or a manual roll-forward the store refused).
   */
  async #cancel(entry: JournalEntry, reason: WorkerManagerError): Promise<void> {
    const failure = errorOf(reason);
    entry.state = 'cancelled';
    entry.error = recorded(failure);
    this.#finish(entry);
    await this.#journal.save();
    this.#d.logger.warn({ rotationId: entry.id, operation: entry.operation, name: entry.name, credentials: entry.credentials, err: failure }, `${entry.operation === 'rollback' ? 'rollback' : 'rotation'} cancelled before it changed anything`);
    await this.#report.audit(entry, failure);
    this.#report.observe(entry, entry.operation === 'rollback' ? 'rollbackSecret' : 'rotateSecret', failure);
  }

  /**
   * Every stage move onto a version goes through here: a version a failed rotation created never becomes current
   * again (HOST_ERR_ROTATION_VERSION_FAILED), whoever asks.
   */
  async #promote(credentials: string, name: string, version: string, correlationId: string | undefined): Promise<void> {
    assertNotFailed(this.#journal, credentials, name, version);
    await this.#creds(credentials).promoteVersion({ name, version }, callOptions(correlationId));
  }

  async #previousOf(credentials: string, name: string, correlationId: string | undefined): Promise<{ cur: SecretVersion | undefined; prev: SecretVersion }> {
    const versions = await this.#creds(credentials).listVersions({ name }, callOptions(correlationId));
    const prev = versions.find((v) => v.stages.includes('previous') && v.status !== 'revoked');
    if (prev === undefined) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' has no previous version to roll back to (none, or already revoked after its grace period)`, {
        details: { name, credentials, reason: 'no-previous-version' },
      });
    }
    return { cur: current(versions), prev };
  }

  // ---------------------------------------------------------------- grace period and revocation

  async #enterGrace(entry: JournalEntry): Promise<void> {
    entry.revokeAt = new Date(Date.now() + entry.gracePeriodMs).toISOString();
    await this.#step(entry, 'grace');
    this.#scheduleRevoke(entry);
  }

  #scheduleRevoke(entry: JournalEntry): void {
    const delay = Math.max(0, Date.parse(entry.revokeAt ?? '') - Date.now()) || 0;
    this.#later(entry.id, delay, () => this.#track(this.#revoke(entry)));
  }

  /** Step `revoke`: the old version stops being readable; then the record is `completed`. Retried on failure. */
  async #revoke(entry: JournalEntry): Promise<void> {
    try {
      await this.#exclusive(this.#key(entry.credentials, entry.name), async () => {
        // A manual rollback may have restored this version meanwhile; then there is nothing left to do.
        if (isFinished(entry) || this.#state !== 'running') return;
        await this.#step(entry, 'revoke');
        const creds = this.#creds(entry.credentials);
        const opts = callOptions(entry.correlationId);
        if (entry.previousVersion !== undefined) {
          const old = (await creds.listVersions({ name: entry.name }, opts)).find((v) => v.version === entry.previousVersion);
          // Revoked or not, it is revoked again (idempotent, by contract): a host that died inside revokeVersion left
          // a store that may already list the version revoked with its revocation half done (AWS: tagged, labels kept).
          if (old !== undefined && !old.stages.includes('current')) await creds.revokeVersion({ name: entry.name, version: old.version }, opts);
        }
        entry.state = 'completed';
        delete entry.error;
        settleRetry(entry);
        this.#finish(entry);
        await this.#journal.save();
        await this.#report.audit(entry);
        // An event the bus refused when the grace period began gets another chance.
        await this.#report.flushOutbox(entry);
      });
    } catch (error) {
      if (this.#state !== 'running') return;
      const failure = errorOf(error);
      const retryMs = noteRetry(entry, failure);
      await this.#journal.save().catch(() => undefined);
      this.#d.logger.warn({ rotationId: entry.id, name: entry.name, credentials: entry.credentials, version: entry.previousVersion, attempt: entry.retry?.attempts, retryMs, err: failure }, 'revoking the old version failed; retrying');
      await this.#report.audit(entry, failure);
      this.#later(entry.id, retryMs, () => this.#track(this.#revoke(entry)));
    }
  }

  // ---------------------------------------------------------------- journal

  #newEntry(operation: 'rotate' | 'rollback', req: { credentials: string; name: string; trigger: RotationTrigger; requester: string; tenant?: string | undefined; correlationId?: string | undefined }, gracePeriodMs: number, state: JournalEntry['state']): JournalEntry {
    const now = Date.now();
    const entry: JournalEntry = {
      id: `rot-${randomUUID()}`,
      operation,
      credentials: req.credentials,
      name: req.name,
      trigger: req.trigger,
      requester: req.requester,
      state,
      startedAt: new Date(now).toISOString(),
      startedAtMs: now,
      workers: [],
      gracePeriodMs,
    };
    if (req.tenant !== undefined) entry.tenant = req.tenant;
    if (req.correlationId !== undefined) entry.correlationId = req.correlationId;
    return entry;
  }

  /**
   * Journals the step before it runs, then audits the transition. A stopping engine starts no further step: the
   * journal keeps the last one written, and the next start resumes or rolls back from there.
   */
  async #step(entry: JournalEntry, step: RotationStep): Promise<void> {
    this.#assertRunning();
    entry.step = step;
    await this.#journal.save();
    await this.#report.audit(entry);
  }

  #finish(entry: JournalEntry): void {
    entry.finishedAt = new Date().toISOString();
  }

  // ---------------------------------------------------------------- plumbing

  #assertRunning(): void {
    if (this.#state !== 'running') throw hostError('HOST_ERR_ROTATION_STOPPED', `the rotation engine is ${this.#state === 'new' ? 'not started' : 'stopped'}`);
  }

  /** The credentials instance of a request (the broker's choice when it names none), after the tenant check. */
  #credentialsFor(req: { credentials?: string | undefined; name?: string; tenant?: string | undefined }): string {
    const broker = this.#d.broker;
    let credentials = req.credentials;
    if (credentials === undefined && broker !== undefined) credentials = broker.credentialsFor({});
    if (credentials === undefined) {
      const running = this.#d.registry.instances().filter((i) => i.state === 'running' && i.plugin?.pkg?.metadata.kind === 'credentials');
      if (running.length !== 1 || running[0] === undefined) {
        throw hostError('HOST_ERR_SECRETS_NOT_CONFIGURED', running.length === 0 ? 'no credentials instance is running' : `several credentials instances run (${running.map((i) => i.name).join(', ')}): name one`);
      }
      credentials = running[0].name;
    }
    if (req.tenant !== undefined && req.name !== undefined) {
      if (broker === undefined) throw new WorkerManagerError('WM_ERR_AUTHORIZATION', `no secret broker to check tenant access to secrets of '${credentials}'`, { details: { credentials } });
      broker.assertCanRead(req.tenant, credentials, req.name);
    }
    return credentials;
  }

  /** Whether the store makes a new version live the moment it creates it (Keycloak): then rollback rolls forward. */
  #immediate(credentials: string): boolean {
    try {
      return this.#d.registry.capabilitiesOf(credentials)[IMMEDIATE] !== undefined;
    } catch {
      // An instance gone from the config: its records are journalled as before and fail at their first call to it.
      return false;
    }
  }

  #key(credentials: string, name: string): string {
    return `${credentials}\u0000${name}`;
  }

  #creds(credentials: string): Proxied<CredentialProviderContract> {
    return this.#d.registry.proxy<CredentialProviderContract>(credentials, 'credentials');
  }

  #policyFor(credentials: string, name: string): ResolvedPolicy | undefined {
    return this.#policies.find((p) => p.credentials === credentials && p.secret === name);
  }

  #later(id: string, ms: number, fn: () => unknown): void {
    if (this.#state !== 'running') return;
    clearTimeout(this.#graceTimers.get(id));
    const timer = setTimeout(() => {
      this.#graceTimers.delete(id);
      if (this.#state === 'running') fn();
    }, ms);
    timer.unref();
    this.#graceTimers.set(id, timer);
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    const done = (): void => void this.#inflight.delete(promise);
    promise.then(done, done);
    return promise;
  }

  /** One operation per secret at a time, and at most `maxParallel` across secrets. */
  async #exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = before.then(() => mine);
    this.#locks.set(key, tail);
    await before;
    try {
      await this.#acquireSlot();
      try {
        return await fn();
      } finally {
        this.#releaseSlot();
      }
    } finally {
      release();
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  async #acquireSlot(): Promise<void> {
    if (this.#slotsFree > 0) {
      this.#slotsFree--;
      return;
    }
    await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
  }

  #releaseSlot(): void {
    const next = this.#slotWaiters.shift();
    if (next !== undefined) next();
    else this.#slotsFree++;
  }
}
