import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { toWorkerManagerError, WorkerManagerError, type CallOptions, type Contract, type Proxied } from '@worker-manager/plugin-sdk';
import { HEARTBEAT_TEXT } from '@worker-manager/plugin-sdk/internal';
import { Compile } from 'typebox/compile';
import type { Static } from 'typebox';
import type { PluginLimits } from '../../config/schema.ts';
import type { HostErrorCode } from '../../errors.ts';
import { ChannelGuard, channelLimits, type RefusedCount } from '../ChannelGuard.ts';
import { contractValidators, schemaIssues, type OperationValidators } from '../contractValidators.ts';
import { EgressProxy } from '../egress/EgressProxy.ts';
import type { SandboxOptions, SandboxState, SandboxStats, SandboxStatusChange, SandboxStream } from '../PluginSandbox.ts';
import { RestartBudget } from '../RestartBudget.ts';
import { invalidParamsError, knownReason, notNegotiatedError, reasonOf, rebuildError, startError, stoppedError, subjectError, timeCall } from '../sandboxErrors.ts';
import { bwrapCommand, checkSandboxSupport, processLimitsOf } from './bwrap.ts';
import { SandboxFrame, type HostFrame, type SandboxInit } from './frames.ts';
import { createSandboxCgroup, type SandboxCgroup } from './cgroup.ts';
import { LineSplitter } from './LineSplitter.ts';
import { buildProcessBundle, type ProcessBundle } from './processBundle.ts';

const sandboxFrame = Compile(SandboxFrame);
/** Longest line read from a sandbox: a reply holding a long worker listing fits; anything longer is dropped unread. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** What is kept of the sandbox's stderr for the crash report (Node's own fatal messages: out of memory, aborts). */
const STDERR_TAIL = 4_096;
/** Port the sandbox's relay to the egress proxy listens on, in the sandbox's own network namespace. */
const PROXY_PORT = 3128;
/** After a call's deadline, how long the host waits for the sandbox to answer it (with its own timeout) itself. */
const DEADLINE_SLACK_MS = 2_000;

interface OperationEntry extends OperationValidators {
  readonly negotiated: boolean;
}

interface Pending {
  readonly id: number;
  readonly op: OperationEntry;
  readonly child: Child;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
  /** Set once a stream operation has opened. */
  stream?: OpenStream;
  unfollow?: () => void;
}

interface OpenStream {
  /** The item a `pull` waits for. */
  next: { resolve(value: IteratorResult<unknown>): void; reject(error: unknown): void } | undefined;
  done: boolean;
}

interface Child {
  readonly process: ChildProcess;
  readonly splitter: LineSplitter;
  stderr: string;
  lastSeen: number;
  ready: boolean;
  exited: boolean;
  /** Why the host killed it, when it did. */
  killedFor?: 'hang' | 'stop' | 'quarantine';
}

interface Waiter {
  resume(): void;
  fail(error: WorkerManagerError): void;
}

/**
 * One restricted plugin instance in its own OS process, confined by bubblewrap (see bwrap.ts for what it can see and
 * do), which hosts the instance's thread pool with Node's permission model on each thread. The host speaks to it over
 * the child's stdin and stdout, one JSON frame per line (frames.ts); the child is untrusted, so every line it writes
 * is bounded, parsed only once it is known to be small enough, checked against the frame schema and, for results and
 * stream items, against the contract. The sandbox's death fails only its own calls; it restarts within its budget.
 */
export class ProcessSandbox {
  readonly #options: SandboxOptions;
  readonly #limits: Static<typeof PluginLimits>;
  readonly #subject: { plugin: string; instance: string; version: string };
  readonly #ops = new Map<string, OperationEntry>();
  readonly #budget: RestartBudget;
  readonly #guard: ChannelGuard;
  readonly #pending = new Map<number, Pending>();
  readonly #waiters = new Set<Waiter>();
  #state: SandboxState = 'idle';
  #child: Child | undefined;
  #bundle: ProcessBundle | undefined;
  #egress: EgressProxy | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #proxy: Record<string, unknown> | undefined;
  #nextId = 1;
  #restarts = 0;
  #crashes = 0;
  #lastError: { code: string; message: string } | undefined;
  #quarantineCause: WorkerManagerError | undefined;
  readonly #egressRefused = new Map<string, number>();
  /** Refusals counted inside the running sandbox (its last `refused` frame), and those of sandboxes that ended. */
  #innerRefused: RefusedCount[] = [];
  readonly #endedRefused = new Map<string, RefusedCount>();
  /** The threads inside are being replaced after a fault; calls still go to the sandbox, which holds them. */
  #innerRestarting = false;
  #cgroup: SandboxCgroup | undefined;
  #warnedNoCgroup = false;

  constructor(options: SandboxOptions) {
    this.#options = options;
    this.#limits = options.limits;
    this.#subject = { plugin: options.pluginId, instance: options.instance, version: options.pluginVersion };
    this.#budget = new RestartBudget(options.limits.restart);
    this.#guard = new ChannelGuard(channelLimits(options.limits.channel), {
      warn: (message, fields) => this.#diagnostic('warn', message, fields),
      flood: (detail) => {
        if (this.#state !== 'running') return false;
        this.#quarantine(this.#error('HOST_ERR_PLUGIN_FLOOD', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' sent more ${detail.kind} messages than its rate for ${detail.seconds} s in a row`, { reason: 'flood', ...detail }));
        return true;
      },
    });
    const negotiated = new Set(options.methods);
    for (const [name, validators] of contractValidators(options.contract)) this.#ops.set(name, { ...validators, negotiated: negotiated.has(name) });
  }

  /** As an in-process sandbox's: `restarting` also while the threads inside the sandbox are being replaced. */
  get state(): SandboxState {
    return this.#state === 'running' && this.#innerRestarting ? 'restarting' : this.#state;
  }

  /** `cpu.stat` of the running sandbox's cgroup, when the CPU limit is applied (tests read nr_throttled). */
  get cpuStatFile(): string | undefined {
    return this.#child === undefined ? undefined : this.#cgroup?.cpuStat;
  }

  /** Pid of the sandbox's outermost process (bubblewrap), while it runs; the plugin's node process is a descendant. */
  get pid(): number | undefined {
    const child = this.#child;
    return child === undefined || child.exited ? undefined : child.process.pid;
  }

  /** Bundles the plugin, starts the confined process and waits for the plugin's setup. Idempotent. */
  start(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return Promise.reject(this.#stoppedError());
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Calls a request/response operation. */
  call(method: string, params: unknown, options?: CallOptions): Promise<unknown> {
    const op = this.#ops.get(method);
    if (op === undefined) return Promise.reject(this.#notAvailable(method));
    return this.#invoke(op, params, options);
  }

  /** Opens a stream operation; resolves once the plugin has started the stream. */
  stream(method: string, params: unknown, options?: CallOptions): Promise<SandboxStream> {
    const op = this.#ops.get(method);
    if (op === undefined) return Promise.reject(this.#notAvailable(method));
    if (op.kind !== 'stream') {
      return Promise.reject(new WorkerManagerError('WM_ERR_VALIDATION', `'${method}' is not a stream operation; use call()`, { details: { ...this.#subject, method } }));
    }
    return this.#invoke(op, params, options) as Promise<SandboxStream>;
  }

  /** A typed view of the contract: one promise-returning function per operation. */
  proxy<C extends Contract>(): Proxied<C> {
    if (this.#proxy === undefined) {
      const out: Record<string, unknown> = {};
      for (const op of this.#ops.values()) out[op.name] = (params: unknown, options?: CallOptions) => this.#invoke(op, params, options);
      this.#proxy = Object.freeze(out);
    }
    return this.#proxy as Proxied<C>;
  }

  stats(): SandboxStats {
    const out: SandboxStats = {
      state: this.state,
      restarts: this.#restarts,
      crashes: this.#crashes,
      inFlight: this.#pending.size,
      threads: this.#child?.ready === true ? this.#limits.threads : 0,
      refused: this.#refused(),
      egressRefused: [...this.#egressRefused].map(([reason, count]) => ({ reason, count })),
    };
    if (this.#lastError !== undefined) out.lastError = { ...this.#lastError };
    return out;
  }

  /** The host's own refusals of the sandbox's lines, plus those the sandbox counted of its threads' messages. */
  #refused(): RefusedCount[] {
    const all = new Map<string, RefusedCount>();
    for (const c of [...this.#guard.refused(), ...this.#endedRefused.values(), ...this.#innerRefused]) {
      const key = `${c.kind}/${c.reason}`;
      const sum = all.get(key);
      if (sum === undefined) all.set(key, { ...c });
      else sum.count += c.count;
    }
    return [...all.values()];
  }

  /** Quarantines the instance for misbehaviour the host saw outside the sandbox: its process is killed for good. */
  quarantine(cause: WorkerManagerError): void {
    if (this.#state !== 'running' && this.#state !== 'restarting') return;
    this.#quarantine(cause);
  }

  /** Refuses new calls, asks the sandbox to close the plugin (up to `timeoutMs`), then kills it. Idempotent. */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.timeoutMs ?? 5_000);
    return this.#stopping;
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------------

  async #start(): Promise<void> {
    this.#state = 'starting';
    const deadline = Date.now() + this.#limits.startTimeoutMs;
    try {
      await checkSandboxSupport();
      await mkdir(this.#options.stateDir, { recursive: true });
      try {
        this.#bundle = await buildProcessBundle({ entry: this.#options.entry, packageDir: this.#options.packageDir, label: `${this.#options.pluginId}-${this.#options.instance}` });
      } catch (error) {
        const wm = toWorkerManagerError(error);
        if (wm.code === 'HOST_ERR_PLUGIN_PACKAGE_UNSAFE') throw this.#error('HOST_ERR_PLUGIN_PACKAGE_UNSAFE', wm.message, { ...wm.details }, error);
        throw this.#error('HOST_ERR_PLUGIN_LOAD_FAILED', `plugin '${this.#subject.plugin}' could not be bundled for the restricted tier: ${wm.message}`, {}, error);
      }
      const egress = this.#options.egress ?? [];
      if (egress.length > 0) {
        this.#egress = await EgressProxy.listen({
          socketPath: join(this.#bundle.runDir, 'egress.sock'),
          allow: egress,
          onRefused: (r) => {
            this.#egressRefused.set(r.reason, (this.#egressRefused.get(r.reason) ?? 0) + 1);
            this.#safely(() => this.#options.onEgressRefused?.(r.target, r.reason));
            this.#diagnostic('warn', 'refused an egress connection of a restricted plugin', { target: r.target, reason: r.reason });
          },
        });
      }
      this.#startWatchdog();
      await this.#spawn(deadline);
      if (this.#state !== 'starting') throw this.#stoppedError();
      this.#state = 'running';
      this.#resumeWaiters();
      this.#status({ state: 'running', reason: 'started' });
    } catch (error) {
      const failure = startError(error, this.#subject);
      if (this.#state === 'starting') {
        this.#state = 'stopped';
        this.#lastError = { code: failure.code, message: failure.message };
        this.#failWaiters(failure);
        await this.#cleanup();
      }
      throw failure;
    }
  }

  /** Starts the confined process and waits, until `deadline`, for the plugin's setup to finish in it. */
  async #spawn(deadline: number): Promise<void> {
    const bundle = this.#bundle;
    if (bundle === undefined) throw this.#stoppedError();
    const limits = processLimitsOf(this.#limits);
    const command = bwrapCommand({ bundleDir: bundle.dir, runDir: bundle.runDir, stateDir: this.#options.stateDir, entry: bundle.sandboxFile, limits });
    const { cgroup, reason } = await createSandboxCgroup(`wm-${this.#options.instance}-${randomUUID().slice(0, 8)}`, { cpuPercent: limits.cpuPercent, maxProcesses: limits.maxProcesses });
    if (cgroup === undefined && !this.#warnedNoCgroup) {
      this.#warnedNoCgroup = true;
      this.#diagnostic('warn', 'the CPU limit of a restricted instance is not applied on this machine', { reason, cpuPercent: limits.cpuPercent });
    }
    this.#cgroup = cgroup;
    const launch = cgroup === undefined ? command : joinCgroupFirst(cgroup.procsFiles, command);
    const proc = spawn(launch.file, launch.args, { stdio: ['pipe', 'pipe', 'pipe'], env: launch.env });
    const child: Child = { process: proc, splitter: new LineSplitter(MAX_FRAME_BYTES), stderr: '', lastSeen: Date.now(), ready: false, exited: false };
    this.#child = child;
    const init: SandboxInit = {
      type: 'init',
      pluginId: this.#options.pluginId,
      pluginVersion: this.#options.pluginVersion,
      kind: this.#options.kind,
      instance: this.#options.instance,
      hostId: this.#options.hostId,
      config: this.#options.config,
      stateDir: this.#options.stateDir,
      packageDir: bundle.packageDir,
      env: { ...this.#options.env },
      limits: this.#limits,
      methods: [...this.#options.methods],
      ...(this.#options.metadata === undefined ? {} : { metadata: this.#options.metadata }),
      bundle: { dir: bundle.dir, threadFile: bundle.threadFile, pluginUrl: bundle.pluginUrl },
      ...(this.#egress === undefined ? {} : { egress: { socketPath: this.#egress.socketPath, proxyPort: PROXY_PORT } }),
    };
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.#kill(child, 'hang');
        reject(this.#error('HOST_ERR_PLUGIN_START_TIMEOUT', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' did not start within ${this.#limits.startTimeoutMs} ms`, { timeoutMs: this.#limits.startTimeoutMs }));
      }, Math.max(0, deadline - Date.now()));
      const boot = {
        ready: () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          child.ready = true;
          resolve();
        },
        fatal: (error: WorkerManagerError) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          this.#kill(child, 'stop');
          reject(error);
        },
      };
      proc.stdout?.on('data', (chunk: Buffer) => {
        child.lastSeen = Date.now();
        for (const line of child.splitter.push(chunk)) this.#onLine(child, line, boot);
        const dropped = child.splitter.takeDropped();
        if (dropped > 0) this.#diagnostic('warn', 'dropped an oversized line from a restricted plugin sandbox', { bytes: dropped, maxBytes: MAX_FRAME_BYTES });
      });
      proc.stderr?.on('data', (chunk: Buffer) => {
        child.stderr = (child.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
      });
      // A write to a sandbox that just died fails here, not as an uncaught error in the host.
      proc.stdin?.on('error', () => {});
      proc.on('error', (error) => boot.fatal(this.#error('HOST_ERR_SANDBOX_UNAVAILABLE', `could not start the sandbox of plugin '${this.#subject.plugin}': ${error.message}`, {}, error)));
      proc.on('exit', (code, signal) => {
        child.exited = true;
        if (cgroup !== undefined) void removeWhenEmpty(cgroup);
        const failure = this.#exitError(child, code, signal);
        if (!settled) {
          boot.fatal(failure);
          return;
        }
        this.#onExit(child, failure);
      });
      this.#write(child, init);
    });
  }

  #exitError(child: Child, code: number | null, signal: NodeJS.Signals | null): WorkerManagerError {
    const how = signal === null ? `exit code ${String(code)}` : `signal ${signal}`;
    const tail = child.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
    if (child.killedFor === 'hang') return this.#error('HOST_ERR_PLUGIN_HUNG', `the sandbox of plugin '${this.#subject.plugin}' stopped answering and was killed`, { reason: 'hang' });
    if (/out of memory|Allocation failed|ENOMEM|Cannot allocate memory/i.test(child.stderr)) {
      return this.#error('HOST_ERR_PLUGIN_OUT_OF_MEMORY', `the sandbox of plugin '${this.#subject.plugin}' ran out of its memory limit (${how})`, { reason: 'oom' });
    }
    return this.#error('HOST_ERR_PLUGIN_CRASHED', `the sandbox of plugin '${this.#subject.plugin}' ended (${how})${tail === '' ? '' : `: ${tail}`}`, { reason: 'crash', exitCode: code, signal });
  }

  /** The sandbox process ended after it was ready: its calls fail, and it restarts within its budget. */
  #onExit(child: Child, failure: WorkerManagerError): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#innerRestarting = false;
    // A new sandbox counts from zero: keep what this one counted.
    for (const c of this.#innerRefused) {
      const key = `${c.kind}/${c.reason}`;
      const sum = this.#endedRefused.get(key);
      if (sum === undefined) this.#endedRefused.set(key, { ...c });
      else sum.count += c.count;
    }
    this.#innerRefused = [];
    for (const call of [...this.#pending.values()]) if (call.child === child) this.#reject(call, failure);
    if (child.killedFor === 'stop' || child.killedFor === 'quarantine' || this.#state !== 'running') return;
    this.#crashed(failure);
  }

  /** Counts a crash and restarts after the budget's backoff, or quarantines once the budget is spent. */
  #crashed(failure: WorkerManagerError): void {
    this.#crashes++;
    this.#lastError = { code: failure.code, message: failure.message };
    this.#status({ state: 'crashed', reason: reasonOf(failure, 'crash'), code: failure.code, message: failure.message });
    const delay = this.#budget.next();
    if (delay === undefined) {
      this.#quarantine(failure);
      return;
    }
    this.#state = 'restarting';
    this.#status({ state: 'restarting', reason: reasonOf(failure, 'crash'), code: failure.code, message: failure.message, delayMs: delay });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#state !== 'restarting') return;
      this.#spawn(Date.now() + this.#limits.startTimeoutMs).then(
        () => {
          if (this.#state !== 'restarting') return;
          this.#restarts++;
          this.#state = 'running';
          this.#resumeWaiters();
          this.#status({ state: 'running', reason: 'restarted' });
        },
        (error: unknown) => {
          if (this.#state !== 'restarting') return;
          this.#child = undefined;
          this.#crashed(toWorkerManagerError(error));
        },
      );
    }, delay);
  }

  #quarantine(cause: WorkerManagerError): void {
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#quarantineCause = cause;
    this.#state = 'quarantined';
    const child = this.#child;
    this.#child = undefined;
    if (child !== undefined) this.#kill(child, 'quarantine');
    const error = this.#quarantinedError(cause);
    // As in-process: the last error is the refusal every later call gets; the status names the cause.
    this.#lastError = { code: error.code, message: error.message };
    for (const call of [...this.#pending.values()]) this.#reject(call, error);
    this.#failWaiters(error);
    this.#status({ state: 'quarantined', reason: reasonOf(cause, 'crash'), code: cause.code, message: cause.message });
  }

  async #stop(timeoutMs: number): Promise<void> {
    const previous = this.#state;
    this.#state = 'stopping';
    clearTimeout(this.#restartTimer);
    this.#failWaiters(this.#stoppedError());
    const child = this.#child;
    if (child !== undefined && previous !== 'idle') {
      // The plugin's close() runs in the sandbox; then the process exits on its own, or is killed at the deadline.
      const exited = new Promise<void>((resolve) => {
        if (child.exited) resolve();
        else child.process.once('exit', () => resolve());
      });
      child.killedFor = 'stop';
      this.#write(child, { type: 'stop', timeoutMs: Math.max(0, timeoutMs - 500) });
      const timer = setTimeout(() => this.#kill(child, 'stop'), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    this.#child = undefined;
    for (const call of [...this.#pending.values()]) this.#reject(call, this.#stoppedError());
    await this.#cleanup();
    this.#state = 'stopped';
  }

  async #cleanup(): Promise<void> {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    await this.#egress?.close().catch(() => {});
    this.#egress = undefined;
    await this.#bundle?.dispose().catch(() => {});
    this.#bundle = undefined;
  }

  #kill(child: Child, why: NonNullable<Child['killedFor']>): void {
    child.killedFor ??= why;
    if (!child.exited) child.process.kill('SIGKILL');
  }

  /** A sandbox whose process writes nothing (not even its heartbeat) for `hangTimeoutMs` is hung: it is killed. */
  #startWatchdog(): void {
    const every = Math.max(50, Math.min(1_000, this.#limits.heartbeatMs));
    this.#watchdog = setInterval(() => {
      const child = this.#child;
      if (child === undefined || !child.ready || child.exited) return;
      if (Date.now() - child.lastSeen > this.#limits.hangTimeoutMs) this.#kill(child, 'hang');
    }, every);
    this.#watchdog.unref();
  }

  // ---- frames ------------------------------------------------------------------------------------------------

  #write(child: Child, frame: HostFrame): void {
    if (child.exited) return;
    child.process.stdin?.write(`${JSON.stringify(frame)}\n`);
  }

  #onLine(child: Child, line: string, boot: { ready(): void; fatal(error: WorkerManagerError): void }): void {
    if (line === HEARTBEAT_TEXT) return;
    // Events and logs are the threads' channel messages: the same guard as in-process (size, depth, schema, rates).
    if (line.startsWith('{"type":"event"') || line.startsWith('{"type":"log"')) {
      const message = this.#guard.admit(line, 0);
      if (message?.type === 'event') this.#safely(() => this.#options.onEvent?.(message.event));
      else if (message?.type === 'log') this.#safely(() => this.#options.onLog?.(message.level, message.message, message.fields === undefined ? { pluginId: this.#subject.plugin } : { pluginId: this.#subject.plugin, plugin: message.fields }));
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(line);
    } catch {
      this.#diagnostic('warn', 'a restricted plugin sandbox wrote a line that is not JSON', { bytes: line.length });
      return;
    }
    if (!sandboxFrame.Check(frame)) {
      this.#diagnostic('warn', 'a restricted plugin sandbox wrote a frame outside the protocol', { bytes: line.length, issues: schemaIssues(sandboxFrame, frame, 3) });
      return;
    }
    switch (frame.type) {
      case 'ready':
        boot.ready();
        return;
      case 'fatal':
        boot.fatal(this.#rebuild(frame.error));
        return;
      case 'status':
        this.#onInnerStatus(frame);
        return;
      case 'stopped':
        return;
      case 'refused':
        this.#innerRefused = frame.counts;
        return;
      default:
        this.#onCallFrame(frame);
    }
  }

  #onCallFrame(frame: Extract<SandboxFrame, { id: number }>): void {
    const call = this.#pending.get(frame.id);
    if (call === undefined) return;
    if (frame.type === 'error') {
      const error = this.#rebuild(frame.error);
      if (call.stream?.next !== undefined) {
        const next = call.stream.next;
        call.stream.next = undefined;
        call.stream.done = true;
        this.#finish(call);
        next.reject(error);
      } else {
        this.#reject(call, error);
      }
      return;
    }
    if (frame.type === 'result') {
      if (call.op.kind !== 'call') return this.#reject(call, this.#protocolError(call, 'answered a stream operation with a result'));
      if (!call.op.output.Check(frame.result)) {
        this.#reject(call, this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}' returned an invalid result for '${call.op.name}'`, { method: call.op.name, issues: schemaIssues(call.op.output, frame.result) }));
        return;
      }
      this.#resolve(call, frame.result);
      return;
    }
    if (frame.type === 'opened') {
      if (call.op.kind !== 'stream' || call.stream !== undefined) return this.#reject(call, this.#protocolError(call, 'opened a stream that was not asked for'));
      call.stream = { next: undefined, done: false };
      clearTimeout(call.timer);
      call.settled = true;
      call.resolve(this.#reader(call));
      return;
    }
    const stream = call.stream;
    const next = stream?.next;
    if (stream === undefined || next === undefined) return;
    stream.next = undefined;
    if (frame.type === 'end') {
      stream.done = true;
      this.#finish(call);
      next.resolve({ done: true, value: undefined });
      return;
    }
    if (!call.op.output.Check(frame.value)) {
      stream.done = true;
      this.#write(call.child, { type: 'cancel', id: call.id });
      this.#finish(call);
      next.reject(this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}' sent an invalid item on '${call.op.name}'`, { method: call.op.name, issues: schemaIssues(call.op.output, frame.value) }));
      return;
    }
    next.resolve({ done: false, value: frame.value });
  }

  #reader(call: Pending): SandboxStream {
    const stream = call.stream as OpenStream;
    const cancel = (): void => {
      if (stream.done) return;
      stream.done = true;
      this.#write(call.child, { type: 'cancel', id: call.id });
      this.#finish(call);
      const next = stream.next;
      stream.next = undefined;
      next?.resolve({ done: true, value: undefined });
    };
    const iterator: AsyncIterator<unknown> = {
      next: () => {
        if (stream.done) return Promise.resolve({ done: true, value: undefined });
        if (stream.next !== undefined) return Promise.reject(new WorkerManagerError('WM_ERR_VALIDATION', 'a stream is read one item at a time'));
        return new Promise<IteratorResult<unknown>>((resolve, reject) => {
          stream.next = { resolve, reject };
          this.#write(call.child, { type: 'pull', id: call.id });
        });
      },
      return: () => {
        cancel();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
    return { [Symbol.asyncIterator]: () => iterator, cancel };
  }

  #onInnerStatus(frame: Extract<SandboxFrame, { type: 'status' }>): void {
    if (frame.state === 'crashed') this.#crashes++;
    if (frame.state === 'running') this.#restarts++;
    this.#innerRestarting = frame.state === 'crashed' || frame.state === 'restarting';
    if (frame.state === 'running' && this.#state === 'running') this.#resumeWaiters();
    if (frame.code !== undefined && frame.message !== undefined) this.#lastError = { code: frame.code, message: frame.message };
    if (frame.state === 'quarantined') {
      // The threads inside spent their restart budget: the whole instance is quarantined, and its process goes.
      this.#quarantine(this.#error((frame.code ?? 'HOST_ERR_PLUGIN_QUARANTINED') as HostErrorCode, frame.message ?? 'quarantined inside its sandbox', { reason: frame.reason }));
      return;
    }
    const change: SandboxStatusChange = { state: frame.state, reason: knownReason(frame.reason), restarts: this.#restarts, crashes: this.#crashes };
    if (frame.code !== undefined) change.code = frame.code;
    if (frame.message !== undefined) change.message = frame.message;
    if (frame.delayMs !== undefined) change.delayMs = frame.delayMs;
    this.#safely(() => this.#options.onStatus?.(change));
  }

  // ---- calls -------------------------------------------------------------------------------------------------

  #invoke(op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    return timeCall(this.#options.onCall, op.name, params, () => this.#dispatch(op, params, options), (fn) => this.#safely(fn));
  }

  #dispatch(op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    if (!op.negotiated) return Promise.reject(this.#notAvailable(op.name));
    if (!op.params.Check(params)) return Promise.reject(invalidParamsError(this.#subject, op, params));
    if (options?.signal?.aborted === true) return Promise.reject(this.#abortedError(op));
    const child = this.#child;
    // While the threads inside are replaced, a call waits here as it would in an in-process sandbox: its deadline
    // counts from the new threads, not from a sandbox that cannot run it yet.
    if (this.#state === 'running' && !this.#innerRestarting && child?.ready === true && !child.exited) return this.#send(child, op, params, options);
    if (this.#state === 'quarantined') return Promise.reject(this.#quarantinedError());
    if (this.#state === 'stopping' || this.#state === 'stopped') return Promise.reject(this.#stoppedError());
    // Starting or restarting: the call waits for the sandbox, up to the start-up deadline.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(this.#error('HOST_ERR_PLUGIN_START_TIMEOUT', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' was not running within ${this.#limits.startTimeoutMs} ms`, { method: op.name }));
      }, this.#limits.startTimeoutMs);
      const waiter: Waiter = {
        resume: () => {
          clearTimeout(timer);
          this.#dispatch(op, params, options).then(resolve, reject);
        },
        fail: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
      if (this.#state === 'idle') this.start().catch(() => {});
    });
  }

  #send(child: Child, op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    const id = this.#nextId++;
    const timeoutMs = options?.timeoutMs ?? this.#limits.callTimeoutMs;
    return new Promise((resolve, reject) => {
      const call: Pending = { id, op, child, resolve, reject, timer: undefined, settled: false };
      this.#pending.set(id, call);
      // The sandbox enforces the deadline itself (and replaces a stuck thread); this timer covers a sandbox that
      // does not answer at all.
      call.timer = setTimeout(() => {
        this.#write(child, { type: 'abort', id });
        this.#reject(call, this.#error('HOST_ERR_PLUGIN_TIMEOUT', `plugin '${this.#subject.plugin}' did not answer '${op.name}' within ${timeoutMs} ms`, { method: op.name, timeoutMs }));
      }, timeoutMs + DEADLINE_SLACK_MS);
      const signal = options?.signal;
      if (signal !== undefined) {
        const onAbort = (): void => {
          this.#write(child, { type: 'abort', id });
          this.#reject(call, this.#abortedError(op));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        call.unfollow = () => signal.removeEventListener('abort', onAbort);
      }
      const frame: HostFrame = { type: 'call', id, method: op.name, params, timeoutMs };
      if (options?.correlationId !== undefined) frame.correlationId = options.correlationId;
      this.#write(child, frame);
    });
  }

  #resolve(call: Pending, value: unknown): void {
    if (call.settled) return;
    call.settled = true;
    this.#finish(call);
    call.resolve(value);
  }

  #reject(call: Pending, error: unknown): void {
    const stream = call.stream;
    if (stream !== undefined) {
      // An open stream whose sandbox died: the reader waiting for an item gets the error.
      const next = stream.next;
      stream.next = undefined;
      stream.done = true;
      this.#finish(call);
      next?.reject(error);
      return;
    }
    if (call.settled) return;
    call.settled = true;
    this.#finish(call);
    call.reject(error);
  }

  #finish(call: Pending): void {
    clearTimeout(call.timer);
    call.unfollow?.();
    this.#pending.delete(call.id);
  }

  #resumeWaiters(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.resume();
  }

  #failWaiters(error: WorkerManagerError): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.fail(error);
  }

  // ---- errors and reporting ----------------------------------------------------------------------------------

  #status(change: Omit<SandboxStatusChange, 'restarts' | 'crashes'>): void {
    this.#safely(() => this.#options.onStatus?.({ ...change, restarts: this.#restarts, crashes: this.#crashes }));
  }

  #diagnostic(level: 'warn' | 'error', message: string, fields: Record<string, unknown>): void {
    this.#safely(() => this.#options.onLog?.(level, message, { pluginId: this.#subject.plugin, version: this.#subject.version, ...fields }));
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch {
      // A hook that throws must not break the channel.
    }
  }

  #error(code: HostErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): WorkerManagerError {
    return subjectError(this.#subject, code, message, details, cause);
  }

  #protocolError(call: Pending, what: string): WorkerManagerError {
    return this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}' ${what} ('${call.op.name}')`, { method: call.op.name });
  }

  #abortedError(op: OperationEntry): WorkerManagerError {
    return new WorkerManagerError('WM_ERR_TIMEOUT', `call '${op.name}' was cancelled by its caller`, { details: { ...this.#subject, method: op.name, reason: 'aborted' } });
  }

  #notAvailable(method: string): WorkerManagerError {
    return notNegotiatedError(this.#subject, method);
  }

  #stoppedError(): WorkerManagerError {
    return stoppedError(this.#subject);
  }

  #quarantinedError(cause: unknown = this.#quarantineCause): WorkerManagerError {
    const why = cause instanceof WorkerManagerError ? cause.message : 'after too many restarts';
    return this.#error('HOST_ERR_PLUGIN_QUARANTINED', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' is quarantined: ${why}`, {}, cause);
  }

  /** Rebuilds an error the sandbox sent, naming the plugin when it did not. */
  #rebuild(frameError: unknown): WorkerManagerError {
    return rebuildError(this.#subject, frameError);
  }
}

/**
 * The launch command run by a shell that first writes its own pid into each cgroup's `cgroup.procs`, then execs the
 * command under the same pid: everything the sandbox starts is in the cgroup before any of it runs. The files are
 * positional arguments, not environment, since bwrap's environment shows as /proc/1/environ inside the sandbox.
 */
function joinCgroupFirst(procsFiles: readonly string[], command: { file: string; args: string[]; env: Record<string, string> }): { file: string; args: string[]; env: Record<string, string> } {
  const script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 121; shift; n=$((n-1)); done; exec "$@"';
  return { file: '/bin/sh', args: ['-c', script, 'wm-sandbox', String(procsFiles.length), ...procsFiles, command.file, ...command.args], env: command.env };
}

/** Removes a sandbox's cgroup once its last process has gone (the outer one exits first; the others follow). */
async function removeWhenEmpty(cgroup: SandboxCgroup): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await cgroup.remove();
    if (!(await cgroupExists(cgroup))) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function cgroupExists(cgroup: SandboxCgroup): Promise<boolean> {
  return access(cgroup.cpuStat).then(
    () => true,
    () => false,
  );
}
