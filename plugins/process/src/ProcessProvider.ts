import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import os, { constants } from 'node:os';
import path from 'node:path';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import {
  boundText,
  isFinalState,
  quotaShortfalls,
  specExecStrings,
  WorkerManagerError,
  type CallContext,
  type CapacityInfo,
  type ExecutionResult,
  type LogChunk,
  type LogOptions,
  type PluginContext,
  type ProviderHandlers,
  type ResourceAmounts,
  type RuntimeSpec,
  type SecretMount,
  type Worker,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import { ABANDONED_CREATE_MS, claimAgeMs, discard, emptyTrash } from './abandonedFolders.ts';
import { Admission, reservationOf, type Census, type Totals } from './Admission.ts';
import { checkSecretMounts, checkSpec, containedRelative } from './checkSpec.ts';
import type { ResolvedConfig } from './config.ts';
import { executeInWorker } from './executeInWorker.ts';
import { writeJsonAtomic } from './jsonFile.ts';
import { observeWorker, wrapperAlive, type StopReason, type TerminatingMarker } from './observeWorker.ts';
import { childrenOf, readEnviron } from './procfs.ts';
import { readLogs } from './readLogs.ts';
import { refusedBySystem } from './refusedBySystem.ts';
import { removeSecretFiles, writeSecretFiles } from './secretFiles.ts';
import { spawnWrapped, wrapperReady, type Launched } from './spawnWrapped.ts';
import { signalGroup, stopWorker, waitUntil } from './stopWorker.ts';
import { mergeSecretRecords, readMeta, secretRecord, type WorkerMeta } from './WorkerMeta.ts';
import { WorkerWatcher, type WatcherOptions } from './WorkerWatcher.ts';
import { claimDir, creatingDir, stagingPaths, trashDir, workerPaths, workersDir, type WorkerPaths } from './workerPaths.ts';

const MiB = 1024 * 1024;
/** Worker folders a full scan reads between two turns of the event loop (the thread's heartbeat needs them). */
const SCAN_BATCH = 64;

/** JSON with sorted keys, to compare specs whatever the key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

const notFound = (workerId: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_NOT_FOUND', `worker '${workerId}' does not exist`, { details: { workerId } });

const conflict = (workerId: string, state: WorkerState, operation: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_CONFLICT', `cannot ${operation} worker '${workerId}': it is ${state.phase}`, { details: { workerId, phase: state.phase } });

/** The signal a caller named, checked against this platform's signals (never a number: names are portable). */
function signalOf(name: string): NodeJS.Signals {
  if (!Object.hasOwn(constants.signals, name)) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', `unknown signal '${boundText(name)}'`, { details: { instancePath: '/signal', signal: boundText(name) } });
  }
  return name as NodeJS.Signals;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The handlers of one plugin thread. Nothing here lives only in memory: every answer comes from the worker folders
 * under `<stateDir>/workers/` and from `/proc`, so any thread of the instance (and any later one) can serve any
 * call about any worker.
 */
export class ProcessProvider {
  readonly #ctx: PluginContext<unknown>;
  readonly #config: ResolvedConfig;
  readonly #watcher: WorkerWatcher;
  readonly #admission: Admission;
  /** What the machine has: read once, since every admission compares against it. */
  readonly #total: ResourceAmounts;
  readonly #emitEvents: boolean;

  constructor(ctx: PluginContext<unknown>, config: ResolvedConfig, emitEvents: boolean) {
    this.#ctx = ctx;
    this.#config = config;
    this.#emitEvents = emitEvents;
    mkdirSync(workersDir(ctx.stateDir), { recursive: true, mode: 0o700 });
    mkdirSync(trashDir(ctx.stateDir), { recursive: true, mode: 0o700 });
    mkdirSync(creatingDir(ctx.stateDir), { recursive: true, mode: 0o700 });
    this.#admission = new Admission(ctx.stateDir, ctx.owner, () => this.#census());
    let storageMiB = 0;
    try {
      const fs = statfsSync(ctx.stateDir);
      storageMiB = Math.floor((fs.blocks * fs.bsize) / MiB);
    } catch {
      // no statfs here: report no storage rather than fail
    }
    this.#total = { cpuMillicores: os.cpus().length * 1000, memoryMiB: Math.floor(os.totalmem() / MiB), gpu: 0, storageMiB };
    const watcherOptions: WatcherOptions = {
      stateDir: ctx.stateDir,
      owner: ctx.owner,
      logger: ctx.logger,
      pollMs: config.pollIntervalMs,
      retainFinishedMs: config.retainFinishedMs,
      leaseStaleMs: config.leaseStaleMs,
      stopForDeadline: async (workerId) => {
        await this.#stop(workerId, 'deadline', config.defaultGracePeriodMs);
      },
      ended: (workerId, generation) => this.#release(workerId, generation),
    };
    if (emitEvents) watcherOptions.emit = (event) => ctx.emit(event);
    this.#watcher = new WorkerWatcher(watcherOptions);
    ctx.signal.addEventListener('abort', () => this.#watcher.stop(), { once: true });
    this.#watcher.start();
  }

  /** The handler table given to the host. */
  handlers(): ProviderHandlers {
    return {
      createWorker: (p) => this.createWorker(p.workerId, p.spec, p.secrets ?? []),
      terminateWorker: (p) => this.terminateWorker(p.workerId, p.gracePeriodMs),
      getWorkerStatus: (p) => this.getWorkerStatus(p.workerId),
      listWorkers: (p) => this.listWorkers(p.labels),
      getLogs: (p, call) => this.getLogs(p.workerId, p.options ?? {}, call),
      getCapacity: () => this.getCapacity(),
      executeCommand: (p, call) => this.executeCommand(p.workerId, p.command, p.timeoutMs, call),
      pauseWorker: (p) => this.pauseWorker(p.workerId),
      resumeWorker: (p) => this.resumeWorker(p.workerId),
      restartWorker: (p) => this.restartWorker(p.workerId, p.secrets),
      refreshSecrets: (p) => this.refreshSecrets(p.workerId, p.secrets, p.signal),
      close: () => this.#watcher.stop(),
    };
  }

  #paths(workerId: string): WorkerPaths {
    return workerPaths(this.#ctx.stateDir, workerId);
  }

  #ours(meta: WorkerMeta): boolean {
    return (
      meta.owner['worker-manager/host'] === this.#ctx.owner['worker-manager/host'] &&
      meta.owner['worker-manager/instance'] === this.#ctx.owner['worker-manager/instance']
    );
  }

  /** The worker's meta, waiting for a create in progress on another thread; undefined if there is no such worker. */
  async #meta(workerId: string): Promise<WorkerMeta | undefined> {
    const paths = this.#paths(workerId);
    for (;;) {
      const meta = readMeta(paths);
      if (meta !== undefined) return this.#ours(meta) ? meta : undefined;
      if (!this.#beingCreated(workerId)) return undefined;
      await sleep(20);
    }
  }

  /** True while a create of this id holds a claim that is not abandoned (see {@link ABANDONED_CREATE_MS}). */
  #beingCreated(workerId: string): boolean {
    const age = claimAgeMs(this.#ctx.stateDir, workerId);
    return age !== undefined && age <= ABANDONED_CREATE_MS;
  }

  async #requireMeta(workerId: string): Promise<WorkerMeta> {
    const meta = await this.#meta(workerId);
    if (meta === undefined) throw notFound(workerId);
    return meta;
  }

  #toWorker(meta: WorkerMeta, state: WorkerState): Worker {
    return {
      workerId: meta.workerId,
      state,
      labels: { ...meta.spec.labels, ...meta.owner },
      createdAt: meta.createdAt,
      providerRef: String(meta.pid),
    };
  }

  *#ourMetas(): Generator<WorkerMeta> {
    let ids: string[];
    try {
      ids = readdirSync(workersDir(this.#ctx.stateDir));
    } catch {
      return;
    }
    for (const id of ids) {
      const meta = readMeta(this.#paths(id));
      if (meta !== undefined && this.#ours(meta)) yield meta;
    }
  }

  /** How each worker folder counts for admission (see {@link Admission}): a recount, O(workers). */
  async *#census(): AsyncIterable<[string, Census]> {
    // Creates under way are listed before the worker folders: a create that renames its folder from creating/ into
    // workers/ meanwhile is then seen in one listing or in both (workers/ wins), never in neither. Listed the other way
    // round, a recount could miss an admitted worker and let another thread admit one past maxWorkers.
    const underWay = listDir(creatingDir(this.#ctx.stateDir)).filter((id) => this.#beingCreated(id));
    const recorded = new Set<string>();
    for (const id of listDir(workersDir(this.#ctx.stateDir))) {
      const paths = this.#paths(id);
      const meta = readMeta(paths);
      if (meta === undefined || !this.#ours(meta) || isFinalState(observeWorker(paths, meta))) {
        yield [id, { kind: 'none' }];
      } else {
        recorded.add(id);
        yield [id, { kind: 'active', generation: meta.generation, reservation: reservationOf(meta.spec) }];
      }
    }
    // Creates under way whose worker is not recorded yet: they count if admitted already.
    for (const id of underWay) {
      if (!recorded.has(id)) yield [id, { kind: 'pending' }];
    }
  }

  /** Gives back what a worker seen ended in `generation` held; a failure only leaves the totals ahead until a recount. */
  async #release(workerId: string, generation: number): Promise<void> {
    try {
      await this.#admission.release(workerId, generation);
    } catch (error) {
      this.#ctx.logger.warn('process provider: could not release the admission of an ended worker', { workerId, error: error instanceof Error ? error.message : String(error) });
    }
  }

  /** The worker environment: passed-through variables, spec.env, our own variables, then env secrets. */
  #environment(workerId: string, spec: RuntimeSpec, paths: WorkerPaths, secrets: readonly SecretMount[]): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of this.#config.passEnv) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, spec.env);
    env['WM_WORKER_ID'] = workerId;
    if (secrets.some((s) => s.strategy !== 'env')) env['WM_SECRETS_DIR'] = paths.secrets;
    for (const s of secrets) if (s.strategy === 'env') env[s.envName] = s.value;
    return env;
  }

  /** Why a worker with `spec` cannot be admitted on top of `totals`; undefined when it can. */
  #refusal(spec: RuntimeSpec, totals: Totals): WorkerManagerError | undefined {
    if (totals.activeWorkers >= this.#config.maxWorkers) {
      return new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `the instance already runs ${totals.activeWorkers} workers, its maxWorkers`, {
        details: { activeWorkers: totals.activeWorkers, maxWorkers: this.#config.maxWorkers },
      });
    }
    const shortfalls = quotaShortfalls(spec.resources ?? {}, this.#capacity(totals).available);
    if (shortfalls.length > 0) {
      return new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `not enough ${shortfalls.map((s) => s.resource).join(', ')} left for this worker`, {
        details: { shortfalls },
      });
    }
    return undefined;
  }

  async createWorker(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[]): Promise<Worker> {
    const plan = checkSpec(spec, secrets);
    const paths = this.#paths(workerId);
    const stateDir = this.#ctx.stateDir;
    const claim = claimDir(stateDir, workerId);
    // The mkdir of the claim decides: of several threads creating one id, exactly one goes on; the others wait for the
    // worker it records. The worker's folder is put together inside the claim and appears under workers/ by a rename,
    // meta.json already in it: no reader (listing, adoption, garbage collection) ever sees a worker without one.
    for (let attempt = 0; ; attempt++) {
      const known = readMeta(paths);
      if (known !== undefined) return this.#existingOf(known, spec);
      try {
        mkdirSync(claim, { mode: 0o700 });
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const existing = await this.#meta(workerId);
      if (existing !== undefined) return this.#existing(existing, spec);
      const found = readMeta(paths);
      if (found !== undefined) return this.#existingOf(found, spec);
      if (attempt >= 2) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `worker '${workerId}' is being created and its folder cannot be claimed`, { details: { workerId } });
      }
      // Untouched for ABANDONED_CREATE_MS: the thread that claimed it died.
      discard(stateDir, claim);
    }
    // A create that finished between the look-up and the claim has already moved its folder in place.
    const raced = readMeta(paths);
    if (raced !== undefined) {
      rmSync(claim, { recursive: true, force: true });
      return this.#existingOf(raced, spec);
    }
    // Left by an older version, which showed the folder before its meta.json.
    if (existsSync(paths.dir) && !existsSync(paths.meta)) discard(stateDir, paths.dir);

    const staging = stagingPaths(stateDir, workerId, randomBytes(4).toString('hex'));
    let pid: number | undefined;
    let admitted = false;
    let recorded = false;
    let createdEmitted = false;
    try {
      mkdirSync(staging.dir, { mode: 0o700 });
      // O(1) whatever the number of workers (a recount only before a refusal): see Admission.
      await this.#admission.admit(workerId, 0, reservationOf(spec), (totals) => this.#refusal(spec, totals));
      admitted = true;
      // Not recursive: a claim taken over meanwhile (this thread stalled past ABANDONED_CREATE_MS) is gone, not remade.
      mkdirSync(staging.work, { mode: 0o755 });
      try {
        mkdirSync(path.join(staging.work, plan.workingDir), { recursive: true });
      } catch (error) {
        throw refusedBySystem(error, '/spec/workingDir');
      }
      if (secrets.length > 0) writeSecretFiles(staging, secrets);
      // What the worker sees are the paths it will have once its folder is in place.
      const env = this.#environment(workerId, spec, paths, secrets);
      const cwd = path.join(paths.work, plan.workingDir);
      const now = Date.now();
      let started: Launched;
      try {
        started = spawnWrapped({
          paths: staging,
          dir: paths.dir,
          argv: plan.argv,
          env,
          cwd: path.join(staging.work, plan.workingDir),
          ...(plan.memoryKiB === undefined ? {} : { memoryKiB: plan.memoryKiB }),
        });
      } catch (error) {
        throw refusedBySystem(error, '/spec', specExecStrings(spec, env, secrets));
      }
      pid = started.pid;
      const meta: WorkerMeta = {
        v: 1,
        workerId,
        spec,
        secrets: secrets.map(secretRecord),
        owner: { ...this.#ctx.owner },
        createdAt: new Date(now).toISOString(),
        cwd,
        generation: 0,
        pid: started.pid,
        startTime: started.startTime,
        startedAt: new Date(now).toISOString(),
      };
      if (plan.memoryKiB !== undefined) meta.memoryKiB = plan.memoryKiB;
      if (spec.timeoutMs !== undefined) meta.deadlineAt = now + spec.timeoutMs;
      writeJsonAtomic(staging.reported, { phase: 'Creating' });
      writeJsonAtomic(staging.meta, meta);
      // The worker exists from this rename on, recorded: a thread killed before it leaves a claim that is discarded
      // (and a wrapper that exits unstarted), after it a worker any thread finds. Only then may the command run.
      renameSync(staging.dir, paths.dir);
      recorded = true;
      try {
        rmSync(claim, { recursive: true, force: true });
      } catch {
        // an empty claim of a recorded worker: the background pass removes it
      }
      started.go();
      // Emitted before the first await: from here on the watcher may see the worker and report it Running, and
      // consumers must see it created first (regression: StateChanged arrived before WorkerCreated under load).
      if (this.#emitEvents) this.#ctx.emit({ type: 'WorkerCreated', workerId, providerRef: String(started.pid), timestamp: meta.createdAt });
      createdEmitted = true;
      await wrapperReady(started, paths);
      this.#watcher.watch(workerId, { phase: 'Creating' });
      this.#ctx.logger.info('process provider: worker started', { workerId, pid: started.pid });
      return this.#toWorker(meta, observeWorker(paths, meta));
    } catch (error) {
      if (pid !== undefined) signalGroup(pid, 'SIGKILL');
      if (recorded) discard(stateDir, paths.dir);
      // The claim is still this create's while its folder is in it; else a create that took it over owns it now.
      else if (existsSync(staging.dir)) discard(stateDir, claim);
      // That create may have recorded the worker by now: then the worker is its, and this is a repeated create.
      const taken = recorded ? undefined : readMeta(paths);
      if (admitted && taken === undefined) await this.#release(workerId, 0);
      if (createdEmitted && this.#emitEvents) this.#ctx.emit({ type: 'WorkerFailed', workerId, reason: 'StartFailed', timestamp: new Date().toISOString() });
      if (taken !== undefined) return this.#existingOf(taken, spec);
      throw error;
    }
  }

  /** A recorded worker of this id: ours is a repeated create; another host's or instance's is refused. */
  #existingOf(meta: WorkerMeta, spec: RuntimeSpec): Worker {
    if (!this.#ours(meta)) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${meta.workerId}' exists and belongs to another host or instance`, { details: { workerId: meta.workerId } });
    }
    return this.#existing(meta, spec);
  }

  #existing(meta: WorkerMeta, spec: RuntimeSpec): Worker {
    if (canonical(meta.spec) !== canonical(spec)) {
      throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${meta.workerId}' exists with a different spec`, { details: { workerId: meta.workerId } });
    }
    return this.#toWorker(meta, observeWorker(this.#paths(meta.workerId), meta));
  }

  async getWorkerStatus(workerId: string): Promise<WorkerState> {
    const paths = this.#paths(workerId);
    const meta = readMeta(paths);
    if (meta !== undefined && this.#ours(meta)) return observeWorker(paths, meta);
    if (meta === undefined && this.#beingCreated(workerId)) return { phase: 'Creating' };
    throw notFound(workerId);
  }

  /** Every worker of the instance: O(workers), in batches, so that a long list does not stall the thread. */
  async listWorkers(labels: Record<string, string> | undefined): Promise<Worker[]> {
    const out: Worker[] = [];
    let seen = 0;
    for (const meta of this.#ourMetas()) {
      if (++seen % SCAN_BATCH === 0) await yieldToLoop();
      const worker = this.#toWorker(meta, observeWorker(this.#paths(meta.workerId), meta));
      if (labels !== undefined && !Object.entries(labels).every(([k, v]) => worker.labels[k] === v)) continue;
      out.push(worker);
    }
    return out.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.workerId.localeCompare(b.workerId)));
  }

  /** Stops a running worker for `reason` and removes its secret files; returns its state and whether it was already gone. */
  async #stop(workerId: string, reason: StopReason, gracePeriodMs: number): Promise<{ state: WorkerState; alreadyGone: boolean }> {
    const meta = await this.#meta(workerId);
    if (meta === undefined) return { state: { phase: 'Terminated' }, alreadyGone: true };
    const paths = this.#paths(workerId);
    const before = observeWorker(paths, meta);
    if (isFinalState(before)) {
      removeSecretFiles(paths);
      await this.#release(workerId, meta.generation);
      return { state: before, alreadyGone: true };
    }
    try {
      // The first reason wins: a terminate during a deadline stop still reports DeadlineExceeded.
      writeFileSync(paths.terminating, JSON.stringify({ reason, at: Date.now() } satisfies TerminatingMarker), { flag: 'wx' });
    } catch {
      // a stop is already under way; stopping again is harmless
    }
    await stopWorker(paths, meta, gracePeriodMs);
    removeSecretFiles(paths);
    const state = observeWorker(paths, meta);
    if (isFinalState(state)) await this.#release(workerId, meta.generation);
    this.#ctx.logger.info('process provider: worker stopped', { workerId, reason });
    return { state, alreadyGone: false };
  }

  async terminateWorker(workerId: string, gracePeriodMs: number | undefined): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    const r = await this.#stop(workerId, 'requested', gracePeriodMs ?? this.#config.defaultGracePeriodMs);
    // Whatever a killed thread left half removed goes now rather than at the next minute's pass.
    emptyTrash(this.#ctx.stateDir);
    return { workerId, ...r };
  }

  async getLogs(workerId: string, options: LogOptions, call: CallContext): Promise<AsyncIterable<LogChunk>> {
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    return readLogs(paths, options, {
      signal: AbortSignal.any([call.signal, this.#ctx.signal]),
      pollMs: Math.min(this.#config.pollIntervalMs, 100),
      isFinished: () => isFinalState(observeWorker(paths, readMeta(paths) ?? meta)),
    });
  }

  /** Capacity from a recount of the workers (O(workers), unlike a create's admission). */
  async getCapacity(): Promise<CapacityInfo> {
    return this.#capacity(await this.#admission.recount());
  }

  #capacity(totals: Totals): CapacityInfo {
    const total = this.#total;
    const used: ResourceAmounts = { cpuMillicores: totals.cpuMillicores, memoryMiB: totals.memoryMiB, gpu: 0, storageMiB: totals.storageMiB };
    const available: ResourceAmounts = {
      cpuMillicores: Math.max(0, total.cpuMillicores - used.cpuMillicores),
      memoryMiB: Math.max(0, total.memoryMiB - used.memoryMiB),
      gpu: 0,
      storageMiB: Math.max(0, total.storageMiB - used.storageMiB),
    };
    return { total, used, available, activeWorkers: totals.activeWorkers, maxWorkers: this.#config.maxWorkers };
  }

  async executeCommand(workerId: string, command: string[], timeoutMs: number | undefined, call: CallContext): Promise<ExecutionResult> {
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    const state = observeWorker(paths, meta);
    if (state.phase !== 'Running') throw conflict(workerId, state, 'run a command in');
    // The worker's own environment, secrets included, read back from the live process rather than kept on disk.
    const env = readEnviron(meta.pid);
    if (env === undefined) throw conflict(workerId, observeWorker(paths, meta), 'run a command in');
    const req: Parameters<typeof executeInWorker>[0] = { command, env, cwd: meta.cwd, maxBytes: this.#config.maxExecOutputBytes, signal: call.signal };
    if (meta.memoryKiB !== undefined) req.memoryKiB = meta.memoryKiB;
    if (timeoutMs !== undefined) req.timeoutMs = timeoutMs;
    return executeInWorker(req).catch((error: unknown) => {
      throw refusedBySystem(error, '/command', [...command.map((text, i) => ({ path: `/command/${i}`, text })), ...Object.entries(env).map(([k, v]) => ({ text: `${k}=${v}` }))]);
    });
  }

  async pauseWorker(workerId: string): Promise<WorkerState> {
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    const state = observeWorker(paths, meta);
    if (state.phase === 'Paused') return state;
    if (state.phase !== 'Running') throw conflict(workerId, state, 'pause');
    signalGroup(meta.pid, 'SIGSTOP');
    await waitUntil(() => observeWorker(paths, meta).phase !== 'Running', 2_000, 5);
    return observeWorker(paths, meta);
  }

  async resumeWorker(workerId: string): Promise<WorkerState> {
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    const state = observeWorker(paths, meta);
    if (state.phase === 'Running') return state;
    if (state.phase !== 'Paused') throw conflict(workerId, state, 'resume');
    signalGroup(meta.pid, 'SIGCONT');
    await waitUntil(() => observeWorker(paths, meta).phase !== 'Paused', 2_000, 5);
    return observeWorker(paths, meta);
  }

  /**
   * Delivers new file secret values atomically (see {@link writeSecretFiles}) and then, if asked, signals the
   * command. The signal goes to the command, the wrapper's child, not to the process group: the group leader is the
   * wrapper, which catches HUP/TERM for its own bookkeeping, and a group signal would also hit whatever the command
   * runs in the foreground (a `cat` of the very secret being read).
   */
  async refreshSecrets(workerId: string, secrets: readonly SecretMount[], signal: string | undefined): Promise<{ workerId: string; updated: number }> {
    checkSecretMounts(secrets);
    const sig = signal === undefined ? undefined : signalOf(signal);
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    const state = observeWorker(paths, meta);
    if (isFinalState(state)) throw conflict(workerId, state, 'refresh the secrets of');
    const updated = secrets.some((m) => m.strategy !== 'env') ? writeSecretFiles(paths, secrets) : 0;
    // A terminate that ran meanwhile removed the folder before these files landed: they must not outlive it.
    if (existsSync(paths.terminating) && isFinalState(observeWorker(paths, meta))) removeSecretFiles(paths);
    if (sig !== undefined) {
      const commands = childrenOf(meta.pid);
      if (commands.length === 0) throw conflict(workerId, observeWorker(paths, meta), `send ${sig} to`);
      for (const pid of commands) {
        try {
          process.kill(pid, sig);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
        }
      }
    }
    this.#ctx.logger.info('process provider: secrets refreshed', {
      workerId,
      updated,
      secrets: secrets.filter((m) => m.strategy !== 'env').map((m) => ({ name: m.name, version: m.version })),
      ...(sig === undefined ? {} : { signal: sig }),
    });
    return { workerId, updated };
  }

  /**
   * Starts the worker's command again. A live worker keeps its environment (read back from `/proc`); `secrets`
   * overrides its env secrets and replaces its secret files. A worker that has ended has no environment left to read,
   * and secret values are never stored: it restarts only when `secrets` brings every env secret it had, and its
   * secret files are still there or come with `secrets` too.
   */
  async restartWorker(workerId: string, secrets: readonly SecretMount[] = []): Promise<Worker> {
    checkSecretMounts(secrets);
    const meta = await this.#requireMeta(workerId);
    const paths = this.#paths(workerId);
    const alive = wrapperAlive(meta);
    const freshEnv = secrets.filter((m) => m.strategy === 'env');
    const freshFiles = secrets.filter((m) => m.strategy !== 'env');
    let env = alive ? readEnviron(meta.pid) : undefined;
    if (env === undefined) {
      const missing = meta.secrets.filter((r) =>
        r.strategy === 'env'
          ? !freshEnv.some((m) => m.envName === r.envName)
          : !freshFiles.some((m) => m.path === r.path) && !existsSync(path.join(paths.secrets, containedRelative(r.path ?? '') ?? '.')),
      );
      if (missing.length > 0) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `worker '${workerId}' has ended and its secrets are gone; restart it with secrets, or create a new worker`, {
          details: { workerId, missing: missing.map((r) => r.name) },
        });
      }
      env = this.#environment(workerId, meta.spec, paths, freshEnv);
    } else {
      for (const m of freshEnv) env[m.envName] = m.value;
    }
    if (freshFiles.length > 0 || meta.secrets.some((r) => r.strategy !== 'env')) env['WM_SECRETS_DIR'] = paths.secrets;
    writeJsonAtomic(paths.terminating, { reason: 'restart', at: Date.now() } satisfies TerminatingMarker);
    let next: WorkerMeta;
    try {
      // Counted again (a worker that had ended), for its next generation; a restart is never refused.
      await this.#admission.readmit(workerId, meta.generation + 1, reservationOf(meta.spec));
      if (alive) await stopWorker(paths, meta, this.#config.defaultGracePeriodMs);
      rmSync(paths.exit, { force: true });
      rmSync(paths.final, { force: true });
      if (freshFiles.length > 0) writeSecretFiles(paths, freshFiles);
      const now = Date.now();
      let started: Launched;
      try {
        started = spawnWrapped({ paths, argv: checkSpec(meta.spec, []).argv, env, cwd: meta.cwd, ...(meta.memoryKiB === undefined ? {} : { memoryKiB: meta.memoryKiB }) });
      } catch (error) {
        // The spec ran before: only the fresh secrets can have made it too large.
        throw refusedBySystem(error, '/secrets', specExecStrings({}, env, secrets));
      }
      next = {
        ...meta,
        secrets: mergeSecretRecords(meta.secrets, secrets),
        generation: meta.generation + 1,
        pid: started.pid,
        startTime: started.startTime,
        startedAt: new Date(now).toISOString(),
      };
      if (meta.spec.timeoutMs !== undefined) next.deadlineAt = now + meta.spec.timeoutMs;
      try {
        // Recorded before the command may run, as at create: a thread killed in between leaves nothing running.
        writeJsonAtomic(paths.meta, next);
      } catch (error) {
        started.abandon();
        throw error;
      }
      started.go();
      await wrapperReady(started, paths);
    } catch (error) {
      if (wrapperAlive(meta)) await this.#admission.readmit(workerId, meta.generation, reservationOf(meta.spec)).catch(() => {});
      else await this.#release(workerId, meta.generation + 1);
      throw error;
    } finally {
      rmSync(paths.terminating, { force: true });
      this.#watcher.watch(workerId);
    }
    this.#ctx.logger.info('process provider: worker restarted', { workerId, pid: next.pid, generation: next.generation });
    return this.#toWorker(next, observeWorker(paths, next));
  }
}
