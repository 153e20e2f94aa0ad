import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import {
  toWorkerManagerError,
  WorkerManagerError,
  type CallOptions,
  type Contract,
  type PluginMetadata,
  type Proxied,
  type WorkerEvent,
} from '@worker-manager/plugin-sdk';
import { CallReply, HEARTBEAT_TEXT, PROTOCOL_VERSION, type CallRequest, type LogLevel, type ThreadInit } from '@worker-manager/plugin-sdk/internal';
import type { Static } from 'typebox';
import { Compile } from 'typebox/compile';
import type { PluginLimits } from '../config/schema.ts';
import type { HostErrorCode } from '../errors.ts';
import { ChannelGuard, channelLimits, type MessageKind, type RefusedCount } from './ChannelGuard.ts';
import { contractValidators, schemaIssues, type OperationValidators } from './contractValidators.ts';
import { PluginThreadPool, withRoute, type TaskRoute, type ThreadFault, type ThreadState } from './PluginThreadPool.ts';
import type { RestrictedBundle } from './restrictedBundle.ts';
import { RestartBudget } from './RestartBudget.ts';
import { invalidParamsError, notNegotiatedError, reasonOf, rebuildError, startError, stoppedError, subjectError, timeCall } from './sandboxErrors.ts';
import { StreamReader } from './StreamReader.ts';
import { restrictedExecArgv } from './threadExecArgv.ts';

/** Everything the registry knows about an instance once it has negotiated with its plugin. */
export interface SandboxOptions {
  pluginId: string;
  pluginVersion: string;
  kind: 'provider' | 'credentials';
  instance: string;
  hostId: string;
  /** Absolute path of the plugin's entry module (its default export is a definePlugin(...) result). */
  entry: string;
  /** Absolute path of the plugin package root: what a restricted plugin may read. */
  packageDir: string;
  /** Instance config, already validated against the plugin's schema. */
  config: unknown;
  /** Per-instance directory; created when missing. */
  stateDir: string;
  isolation: 'trusted' | 'restricted';
  /** The only environment plugin threads see; never the host's process.env. */
  env: Record<string, string>;
  limits: Static<typeof PluginLimits>;
  /** Negotiated operations; any other is refused with WM_ERR_COMPATIBILITY before a thread sees it. */
  methods: readonly string[];
  contract: Contract;
  /**
   * The package.json `workerManager` block negotiated from; the threads refuse a definition that declares anything else
   * (HOST_ERR_PLUGIN_METADATA_DRIFT). The registry always passes it; a sandbox built without it checks id, version and
   * kind only.
   */
  metadata?: PluginMetadata;
  onEvent?(event: WorkerEvent): void;
  /**
   * A line for the host's log, with `fields` to merge into it as they are. A plugin's own fields are always nested
   * under `plugin` (next to the host's `pluginId`), so a plugin can never overwrite a field of the host's line (`level`,
   * `time`, `msg`, `instance`, `source`); the sandbox's own lines about the plugin carry flat fields.
   */
  onLog?(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  onStatus?(change: SandboxStatusChange): void;
  /** Told after each message from the threads is refused or dropped; {@link PluginSandbox.stats} has the counts. */
  onRefused?(): void;
  /** Told when each contract call settles (call-latency metrics); absent, calls are not timed at all. */
  onCall?(call: SandboxCall): void;
  /**
   * A restricted bundle already built (inside the out-of-process sandbox, which cannot run esbuild): the threads load
   * it instead of bundling `entry`, and the sandbox never deletes it.
   */
  prebuilt?: Omit<RestrictedBundle, 'dispose'>;
  /** For a restricted instance: the `host:port` pairs its egress proxy lets it reach; none gives it no network. */
  egress?: readonly string[];
  /** Told of each connection the egress proxy refused (metrics); `target` is what the plugin asked for. */
  onEgressRefused?(target: string, reason: string): void;
}

/**
 * One settled contract call. `params` is what the caller passed and may hold secret material (`secrets` mounts): read
 * what you count, never keep or log it. For a stream operation the latency is the time until the stream opened.
 */
export interface SandboxCall {
  method: string;
  params: unknown;
  latencyMs: number;
  /** Set when the call failed: the code and category it failed with. */
  error?: { code: string; category: string };
}

/** Lifecycle of a sandbox. */
export type SandboxState = 'idle' | 'starting' | 'running' | 'restarting' | 'quarantined' | 'stopping' | 'stopped';

/** Why the sandbox changed health: a thread fault, a failed boot of a new generation, or a (re)start. */
export type SandboxStatusReason = ThreadFault['kind'] | 'boot' | 'started' | 'restarted' | 'foreign-events' | 'flood';

/** A change of health, for the registry (which publishes `ci.plugin.crashed` / `ci.plugin.quarantined`). */
export interface SandboxStatusChange {
  state: 'crashed' | 'restarting' | 'running' | 'quarantined';
  reason: SandboxStatusReason;
  /** Error code of the fault (HOST_ERR_PLUGIN_CRASHED, ..._OUT_OF_MEMORY, ..._HUNG, ..._SETUP_FAILED ...). */
  code?: string;
  message?: string;
  threadId?: number;
  /** For `restarting`: how long the sandbox waits before starting new threads. */
  delayMs?: number;
  restarts: number;
  crashes: number;
}

/** Counters of a sandbox. */
export interface SandboxStats {
  state: SandboxState;
  restarts: number;
  crashes: number;
  inFlight: number;
  threads: number;
  lastError?: { code: string; message: string };
  /** Messages from the threads that were refused (too large, too deep, malformed) or dropped past a rate. */
  refused: RefusedCount[];
  /** Connections the egress proxy of a restricted instance refused, by reason. */
  egressRefused?: Array<{ reason: string; count: number }>;
}

/** A stream returned by {@link PluginSandbox.stream}. */
export type SandboxStream = AsyncIterable<unknown> & { cancel(): void };

interface OperationEntry extends OperationValidators {
  readonly negotiated: boolean;
}

interface Waiter {
  resume(pool: PluginThreadPool): void;
  fail(error: WorkerManagerError): void;
}

/** A call on its way: the promise its caller holds, plus its route (piscina's balancer fills `threadId`). */
class PendingCall implements TaskRoute {
  threadId: number | undefined = undefined;
  target: undefined = undefined;
  readonly op: OperationEntry;
  readonly pool: PluginThreadPool;
  readonly deadline: number;
  readonly promise: Promise<unknown>;
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined = undefined;
  graceTimer: NodeJS.Timeout | undefined = undefined;
  /** The caller has its answer. */
  settled = false;
  /** piscina has settled the task (the thread answered, or it is gone). */
  returned = false;
  port: MessagePort | undefined = undefined;
  options: CallOptions | undefined;
  params: unknown;

  constructor(op: OperationEntry, pool: PluginThreadPool, deadline: number, params: unknown, options: CallOptions | undefined) {
    this.op = op;
    this.pool = pool;
    this.deadline = deadline;
    this.params = params;
    this.options = options;
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

const replyCheck = Compile(CallReply);
const THREAD_BOOT = fileURLToPath(new URL('./thread/threadBoot.mjs', import.meta.url));
// piscina's main is dist/main.js; its thread script (dist/worker.js) and package.json live under the package root.
const PISCINA_DIR = dirname(dirname(createRequire(import.meta.url).resolve('piscina')));
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/** How long `$close` (the plugin's `close()`) may take per pool when a generation is retired or stopped. */
const CLOSE_TIMEOUT_MS = 1_000;
const LOST_THREAD: ReadonlySet<string> = new Set(['HOST_ERR_PLUGIN_CRASHED', 'HOST_ERR_PLUGIN_OUT_OF_MEMORY', 'HOST_ERR_PLUGIN_HUNG']);

/**
 * One plugin instance in its own pool of worker threads. Calls are validated against the contract on both sides of
 * the thread boundary; a call that overruns its deadline, a thread that dies or stops sending heartbeats, each
 * rejects the calls it affects with a typed error and restarts the instance with backoff, until the restart budget
 * is spent and the instance is quarantined.
 *
 * Threads are managed in generations: a fault retires the whole generation (its healthy threads finish their calls,
 * run the plugin's `close()` and are destroyed) and a new one starts after the backoff. Calls that arrive in between
 * wait for it, up to the start-up deadline; their own deadline starts once they reach a thread.
 */
export class PluginSandbox {
  readonly #options: SandboxOptions;
  readonly #limits: Static<typeof PluginLimits>;
  readonly #subject: { plugin: string; instance: string; version: string };
  readonly #ops = new Map<string, OperationEntry>();
  readonly #budget: RestartBudget;
  readonly #registry = new Map<number, ThreadState>();
  readonly #pools = new Set<PluginThreadPool>();
  readonly #closing = new WeakSet<PluginThreadPool>();
  readonly #waiters = new Set<Waiter>();
  readonly #guard: ChannelGuard;
  #state: SandboxState = 'idle';
  #current: PluginThreadPool | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #bundle: RestrictedBundle | undefined;
  #proxy: Record<string, unknown> | undefined;
  #restarts = 0;
  #crashes = 0;
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #lastError: { code: string; message: string } | undefined;
  /** Why the instance was quarantined: calls refused afterwards say so too. */
  #quarantineCause: WorkerManagerError | undefined;

  constructor(options: SandboxOptions) {
    this.#options = options;
    this.#limits = options.limits;
    this.#subject = { plugin: options.pluginId, instance: options.instance, version: options.pluginVersion };
    this.#budget = new RestartBudget(options.limits.restart);
    this.#guard = new ChannelGuard(channelLimits(options.limits.channel), {
      warn: (message, fields) => this.#diagnostic('warn', message, fields),
      flood: (detail) => this.#onFlood(detail),
      refused: () => this.#safely(() => this.#options.onRefused?.()),
    });
    const negotiated = new Set(options.methods);
    for (const [name, validators] of contractValidators(options.contract)) {
      this.#ops.set(name, { ...validators, negotiated: negotiated.has(name) });
    }
  }

  get state(): SandboxState {
    return this.#state;
  }

  /** Starts the threads; resolves once they have loaded the plugin and run its setup. Idempotent. */
  start(): Promise<void> {
    // A stopped sandbox stays stopped: the registry builds a new one to start an instance again.
    if (this.#state === 'stopping' || this.#state === 'stopped') return Promise.reject(this.#stoppedError());
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Calls a request/response operation. */
  call(method: string, params: unknown, options?: CallOptions): Promise<unknown> {
    const op = this.#ops.get(method);
    if (op === undefined) return Promise.reject(this.#notAvailable(method));
    if (op.kind !== 'call') {
      return Promise.reject(new WorkerManagerError('WM_ERR_VALIDATION', `'${method}' is a stream operation; use stream()`, { details: { ...this.#subject, method } }));
    }
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
      for (const op of this.#ops.values()) {
        out[op.name] = (params: unknown, options?: CallOptions) => this.#invoke(op, params, options);
      }
      this.#proxy = Object.freeze(out);
    }
    return this.#proxy as Proxied<C>;
  }

  stats(): SandboxStats {
    const out: SandboxStats = {
      state: this.#state,
      restarts: this.#restarts,
      crashes: this.#crashes,
      inFlight: this.#inFlight,
      threads: this.#current?.size ?? 0,
      refused: this.#guard.refused(),
    };
    if (this.#lastError !== undefined) out.lastError = { ...this.#lastError };
    return out;
  }

  /**
   * Quarantines a running (or restarting) instance for misbehaviour the host saw outside the sandbox, such as events
   * about workers it does not own: calls are refused from now on, its threads are destroyed, and only a host restart
   * brings it back. No effect in any other state.
   */
  quarantine(cause: WorkerManagerError): void {
    if (this.#state !== 'running' && this.#state !== 'restarting') return;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#quarantine(cause);
  }

  /** Refuses new calls, lets in-flight ones finish up to `timeoutMs`, runs the plugin's close(), destroys. Idempotent. */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    return this.#stopping;
  }

  // ---- calls -------------------------------------------------------------------------------------------------

  #invoke(op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    return timeCall(this.#options.onCall, op.name, params, () => this.#dispatch(op, params, options), (fn) => this.#safely(fn));
  }

  #dispatch(op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    if (!op.negotiated) return Promise.reject(this.#notAvailable(op.name));
    if (!op.params.Check(params)) return Promise.reject(this.#invalidParams(op, params));
    const pool = this.#current;
    if (pool !== undefined && this.#state === 'running') return this.#send(pool, op, params, this.#callDeadline(options), options);
    return this.#later(op, params, options);
  }

  /** A call's deadline counts from the moment it reaches a running generation, never from a wait for one to start. */
  #callDeadline(options: CallOptions | undefined): number {
    return Date.now() + (options?.timeoutMs ?? this.#limits.callTimeoutMs);
  }

  #send(pool: PluginThreadPool, op: OperationEntry, params: unknown, deadline: number, options: CallOptions | undefined): Promise<unknown> {
    const call = new PendingCall(op, pool, deadline, params, options);
    const correlationId = options?.correlationId;
    const request: CallRequest =
      correlationId === undefined
        ? { v: PROTOCOL_VERSION, method: op.name, params, deadline }
        : { v: PROTOCOL_VERSION, method: op.name, params, deadline, correlationId };
    let transfer: MessagePort[] | undefined;
    if (op.kind === 'stream') {
      const { port1, port2 } = new MessageChannel();
      call.port = port1;
      request.port = port2;
      transfer = [port2];
    }
    this.#inFlight++;
    pool.pending++;
    call.timer = setTimeout(this.#onDeadline, Math.max(0, deadline - Date.now()), call);
    const signal = options?.signal;
    if (signal !== undefined) this.#followSignal(call, signal);
    pool.run(withRoute(request, call), transfer).then(
      (reply) => this.#onReply(call, reply),
      (error: unknown) => this.#onLost(call, error),
    );
    return call.promise;
  }

  #onReply(call: PendingCall, reply: CallReply): void {
    call.returned = true;
    call.pool.release(call);
    clearTimeout(call.graceTimer);
    if (call.settled) {
      call.port?.close();
      return;
    }
    if (!replyCheck.Check(reply)) {
      call.port?.close();
      this.#reject(call, this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}' sent a malformed reply to '${call.op.name}'`, { method: call.op.name }));
      return;
    }
    if (!reply.ok) {
      call.port?.close();
      const error = this.#rebuild(reply.error);
      // The handler's signal aborts at the same deadline as the host timer; whichever fires first, the caller must
      // see one code for "the deadline passed", with what the plugin said kept as the cause.
      if (Date.now() >= call.deadline) {
        const ms = call.options?.timeoutMs ?? this.#limits.callTimeoutMs;
        this.#reject(call, this.#error('HOST_ERR_PLUGIN_TIMEOUT', `plugin '${this.#subject.plugin}' did not answer '${call.op.name}' within ${ms} ms`, { method: call.op.name, timeoutMs: ms }, error));
        return;
      }
      this.#reject(call, error);
      return;
    }
    if (call.port !== undefined) {
      this.#resolve(call, this.#openReader(call, call.port));
      return;
    }
    if (!call.op.output.Check(reply.value)) {
      this.#reject(
        call,
        this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}' returned an invalid result for '${call.op.name}'`, {
          method: call.op.name,
          issues: schemaIssues(call.op.output, reply.value),
        }),
      );
      return;
    }
    this.#resolve(call, reply.value);
  }

  /** piscina rejected the task: its thread is gone, or the pool was destroyed. */
  #onLost(call: PendingCall, error: unknown): void {
    call.returned = true;
    call.pool.release(call);
    clearTimeout(call.graceTimer);
    call.port?.close();
    if (call.settled) return;
    if (call.threadId === undefined && (this.#state === 'running' || this.#state === 'restarting')) {
      // It never reached a thread (it sat in a retired pool's queue), so running it on the next generation is safe
      // even for an operation that is not idempotent.
      this.#finish(call);
      this.#later(call.op, call.params, call.options).then(call.resolve, call.reject);
      return;
    }
    this.#reject(call, this.#lostCallError(call, error));
  }

  readonly #onDeadline = (call: PendingCall): void => {
    if (call.settled) return;
    const ms = call.options?.timeoutMs ?? this.#limits.callTimeoutMs;
    this.#reject(call, this.#error('HOST_ERR_PLUGIN_TIMEOUT', `plugin '${this.#subject.plugin}' did not answer '${call.op.name}' within ${ms} ms`, { method: call.op.name, timeoutMs: ms }));
    if (call.threadId !== undefined && !call.returned) {
      // The handler's signal aborted at the same deadline; a cooperative handler returns within the grace period and
      // keeps its thread. One that does not is stuck or ignoring its signal, and its thread is replaced.
      call.graceTimer = setTimeout(this.#onGraceOver, Math.min(1_000, Math.max(50, this.#limits.heartbeatMs)), call);
    }
  };

  readonly #onGraceOver = (call: PendingCall): void => {
    if (!call.returned && call.threadId !== undefined) call.pool.kill(call.threadId, 'timeout');
  };

  #followSignal(call: PendingCall, signal: AbortSignal): void {
    const abort = (): void => {
      if (call.settled) return;
      this.#reject(call, this.#abortedError(call.op.name, signal));
    };
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  }

  /** What a caller that aborted its own call sees: its own reason when it gave a WorkerManagerError. */
  #abortedError(method: string, signal: AbortSignal | undefined): WorkerManagerError {
    const reason: unknown = signal?.reason;
    return reason instanceof WorkerManagerError ? reason : new WorkerManagerError('WM_ERR_TIMEOUT', `call '${method}' was aborted by its caller`, { details: { ...this.#subject, method } });
  }

  #resolve(call: PendingCall, value: unknown): void {
    this.#finish(call);
    call.resolve(value);
  }

  #reject(call: PendingCall, error: WorkerManagerError): void {
    this.#finish(call);
    call.reject(error);
  }

  #finish(call: PendingCall): void {
    call.settled = true;
    clearTimeout(call.timer);
    this.#inFlight--;
    const pool = call.pool;
    pool.pending--;
    if (this.#inFlight === 0) this.#drained?.();
    if (pool.retired && pool.pending === 0) this.#closePool(pool);
  }

  /**
   * A call that arrived while the instance was not running: wait for it (starting, restarting) or refuse it. The wait
   * is bounded by the start-up deadline plus the restart backoff, not by the call's own deadline: a generation that
   * takes seconds to load on a busy node must not fail calls that would have run in milliseconds once it is up.
   */
  #later(op: OperationEntry, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    switch (this.#state) {
      case 'quarantined':
        return Promise.reject(this.#quarantinedError());
      case 'idle':
        return Promise.reject(this.#error('HOST_ERR_PLUGIN_STOPPED', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' is not started`));
      case 'stopping':
      case 'stopped':
        return Promise.reject(this.#stoppedError());
      default:
        break;
    }
    const current = this.#current;
    if (current !== undefined && this.#state === 'running') return this.#send(current, op, params, this.#callDeadline(options), options);
    const waitMs = this.#limits.startTimeoutMs + this.#limits.restart.maxBackoffMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          this.#error('HOST_ERR_PLUGIN_TIMEOUT', `plugin '${this.#subject.plugin}' did not come back within ${waitMs} ms for '${op.name}' (state ${this.#state})`, {
            method: op.name,
            timeoutMs: waitMs,
          }),
        );
      }, waitMs);
      const signal = options?.signal;
      const onAbort = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        reject(this.#abortedError(op.name, signal));
      };
      const waiter: Waiter = {
        resume: (pool) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.#send(pool, op, params, this.#callDeadline(options), options).then(resolve, reject);
        },
        fail: (error) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      if (signal?.aborted === true) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  #openReader(call: PendingCall, port: MessagePort): SandboxStream {
    const thread = call.threadId === undefined ? undefined : call.pool.thread(call.threadId);
    const reader: StreamReader = new StreamReader({
      port,
      item: call.op.output,
      read: (raw) => this.#guard.streamMessage(raw),
      protocolError: (message, details) => this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${this.#subject.plugin}': ${message} ('${call.op.name}')`, { method: call.op.name, ...details }),
      rebuild: (message) => this.#rebuild(message.error),
      closedError: () => {
        if (this.#state === 'stopping' || this.#state === 'stopped') return this.#stoppedError();
        if (this.#state === 'quarantined') return this.#quarantinedError();
        return thread?.fault !== undefined
          ? this.#faultError(thread.fault, thread.id)
          : this.#error('HOST_ERR_PLUGIN_CRASHED', `plugin '${this.#subject.plugin}' stream '${call.op.name}' ended without an end (its thread is gone)`, { method: call.op.name });
      },
      onFinish: () => thread?.streams.delete(reader),
    });
    if (thread !== undefined) {
      if (thread.fault !== undefined) reader.fail(this.#faultError(thread.fault, thread.id));
      else thread.streams.add(reader);
    }
    const signal = call.options?.signal;
    if (signal !== undefined) {
      if (signal.aborted) reader.cancel();
      else signal.addEventListener('abort', () => reader.cancel(), { once: true });
    }
    return reader;
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------------

  async #start(): Promise<void> {
    if (this.#state !== 'idle') throw this.#stoppedError();
    this.#state = 'starting';
    // From here, not from the pool's creation: bundling a restricted plugin is part of loading it, and calls waiting
    // for this start give up startTimeoutMs after they arrived, so the start must fail before they do.
    const deadline = Date.now() + this.#limits.startTimeoutMs;
    try {
      await mkdir(this.#options.stateDir, { recursive: true });
      this.#startWatchdog();
      if (this.#options.isolation === 'restricted' && this.#options.prebuilt !== undefined) {
        this.#bundle = { ...this.#options.prebuilt, dispose: async () => {} };
      } else if (this.#options.isolation === 'restricted') {
        try {
          // Loaded on demand: the out-of-process sandbox runs this class from a bundle that has no esbuild.
          const { buildRestrictedBundle } = await import('./restrictedBundle.ts');
          this.#bundle = await buildRestrictedBundle(this.#options.entry, `${this.#options.pluginId}-${this.#options.instance}`);
        } catch (error) {
          throw this.#error('HOST_ERR_PLUGIN_LOAD_FAILED', `plugin '${this.#subject.plugin}' could not be bundled for the restricted tier: ${messageOf(error)}`, {}, error);
        }
      }
      const pool = await this.#boot(deadline);
      if (this.#state !== 'starting') {
        await pool.destroy();
        this.#pools.delete(pool);
        throw this.#stoppedError();
      }
      this.#current = pool;
      this.#state = 'running';
      this.#resumeWaiters(pool);
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

  /** Starts a generation of threads and waits, until `deadline`, for each to load the plugin and run setup. */
  async #boot(deadline = Date.now() + this.#limits.startTimeoutMs): Promise<PluginThreadPool> {
    const restricted = this.#bundle;
    const init: ThreadInit = {
      v: PROTOCOL_VERSION,
      entry: restricted?.pluginUrl ?? pathToFileURL(this.#options.entry).href,
      pluginId: this.#options.pluginId,
      pluginVersion: this.#options.pluginVersion,
      kind: this.#options.kind,
      instance: this.#options.instance,
      hostId: this.#options.hostId,
      config: this.#options.config,
      stateDir: this.#options.stateDir,
      heartbeatMs: this.#limits.heartbeatMs,
      methods: [...this.#options.methods],
      ...(this.#options.metadata === undefined ? {} : { metadata: this.#options.metadata }),
    };
    const pool = new PluginThreadPool({
      filename: restricted?.threadFile ?? THREAD_BOOT,
      workerData: init,
      // Out of process (a prebuilt bundle), the state folder is the instance's own, inside the confinement: the threads
      // may keep files there. In process it is a folder of the host's, so the threads get no write access at all.
      execArgv:
        restricted === undefined
          ? undefined
          : this.#options.prebuilt === undefined
            ? restrictedExecArgv([PISCINA_DIR, restricted.dir, this.#options.packageDir])
            : restrictedExecArgv([PISCINA_DIR, restricted.dir, this.#options.packageDir, this.#options.stateDir], process.versions.node, [this.#options.stateDir]),
      env: { ...this.#options.env },
      threads: this.#limits.threads,
      concurrentCallsPerThread: this.#limits.concurrentCallsPerThread,
      heapMb: this.#limits.heapMb,
      registry: this.#registry,
      onThreadLost: (thread) => this.#onThreadLost(thread),
    });
    this.#pools.add(pool);
    try {
      // Each thread gets its own channel with its `$ready`: what arrives on a port came from the one thread holding
      // the other end, so a thread can never send heartbeats (or events, or logs) in another's name.
      await Promise.all(pool.threadIds().map((id) => this.#control(pool, '$ready', id, deadline, this.#openThreadChannel(pool, id))));
      return pool;
    } catch (error) {
      await pool.destroy();
      this.#pools.delete(pool);
      throw error;
    }
  }

  /** Runs a control call (`$ready`, `$close`) outside the contract. */
  async #control(pool: PluginThreadPool, method: string, target: number | undefined, deadline: number, port?: MessagePort): Promise<unknown> {
    const route: TaskRoute = { threadId: undefined, target, untracked: true };
    const request: CallRequest = port === undefined ? { v: PROTOCOL_VERSION, method, params: null, deadline } : { v: PROTOCOL_VERSION, method, params: null, deadline, port };
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            method === '$ready'
              ? this.#error('HOST_ERR_PLUGIN_START_TIMEOUT', `plugin '${this.#subject.plugin}' threads did not answer '$ready' within startTimeoutMs (${this.#limits.startTimeoutMs} ms)`, {
                  method,
                  timeoutMs: this.#limits.startTimeoutMs,
                })
              : this.#error('HOST_ERR_PLUGIN_TIMEOUT', `plugin '${this.#subject.plugin}' threads did not answer '${method}' in time`, { method }),
          ),
        Math.max(0, deadline - Date.now()),
      );
    });
    const run = pool.run(withRoute(request, route), port === undefined ? undefined : [port]);
    try {
      const reply = await Promise.race([run, expired]);
      if (!replyCheck.Check(reply)) throw this.#error('HOST_ERR_PLUGIN_PROTOCOL', `plugin thread sent a malformed reply to '${method}'`, { method });
      if (!reply.ok) throw this.#rebuild(reply.error);
      return reply.value;
    } catch (error) {
      if (error instanceof WorkerManagerError) throw error;
      const thread = route.threadId === undefined ? undefined : pool.thread(route.threadId);
      throw thread?.fault !== undefined ? this.#faultError(thread.fault, thread.id) : this.#lostError(error);
    } finally {
      clearTimeout(timer);
      run.then(
        () => pool.release(route),
        () => pool.release(route),
      );
    }
  }

  #onThreadLost(thread: ThreadState): void {
    const fault = thread.fault ?? { kind: 'crash' };
    const error = this.#faultError(fault, thread.id);
    this.#crashes++;
    this.#lastError = { code: error.code, message: error.message };
    for (const reader of thread.streams) reader.fail(error);
    thread.streams.clear();
    this.#status({ state: 'crashed', reason: fault.kind, code: error.code, message: error.message, threadId: thread.id });
    if (thread.pool === this.#current && this.#state === 'running') {
      this.#current = undefined;
      this.#retire(thread.pool);
      this.#scheduleRestart(fault.kind, error);
    }
  }

  #retire(pool: PluginThreadPool): void {
    pool.retire();
    if (pool.pending === 0) this.#closePool(pool);
  }

  #closePool(pool: PluginThreadPool): void {
    if (this.#closing.has(pool)) return;
    this.#closing.add(pool);
    void pool.close(CLOSE_TIMEOUT_MS, this.#closeRequest).finally(() => this.#pools.delete(pool));
  }

  readonly #closeRequest = (): CallRequest => ({ v: PROTOCOL_VERSION, method: '$close', params: null, deadline: Date.now() + CLOSE_TIMEOUT_MS });

  #scheduleRestart(reason: SandboxStatusReason, cause: WorkerManagerError): void {
    const delayMs = this.#budget.next();
    if (delayMs === undefined) {
      this.#quarantine(cause);
      return;
    }
    this.#restarts++;
    this.#state = 'restarting';
    this.#status({ state: 'restarting', reason, code: cause.code, message: cause.message, delayMs });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      void this.#restart();
    }, delayMs);
  }

  async #restart(): Promise<void> {
    if (this.#state !== 'restarting') return;
    let pool: PluginThreadPool;
    try {
      pool = await this.#boot();
    } catch (error) {
      if (this.#state !== 'restarting') return;
      const failure = toWorkerManagerError(error);
      this.#lastError = { code: failure.code, message: failure.message };
      // A thread lost while booting was reported as a crash already.
      if (!LOST_THREAD.has(failure.code)) this.#status({ state: 'crashed', reason: 'boot', code: failure.code, message: failure.message });
      this.#scheduleRestart('boot', failure);
      return;
    }
    if (this.#state !== 'restarting') {
      await pool.destroy();
      this.#pools.delete(pool);
      return;
    }
    this.#current = pool;
    this.#state = 'running';
    this.#resumeWaiters(pool);
    this.#status({ state: 'running', reason: 'restarted' });
  }

  #quarantine(cause: WorkerManagerError): void {
    this.#state = 'quarantined';
    this.#quarantineCause = cause;
    this.#current = undefined;
    const error = this.#quarantinedError(cause);
    this.#lastError = { code: error.code, message: error.message };
    this.#failWaiters(error);
    for (const pool of this.#pools) void pool.destroy().finally(() => this.#pools.delete(pool));
    this.#status({ state: 'quarantined', reason: reasonOf(cause), code: cause.code, message: error.message });
  }

  async #stop(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#failWaiters(this.#stoppedError());
    if (this.#starting !== undefined) await this.#starting.catch(() => {});
    if (this.#inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.#drained = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      this.#drained = undefined;
    }
    this.#current = undefined;
    const closeMs = Math.min(CLOSE_TIMEOUT_MS, Math.max(0, deadline - Date.now()));
    await Promise.all(
      [...this.#pools].map((pool) => {
        this.#closing.add(pool);
        return pool.close(closeMs, this.#closeRequest);
      }),
    );
    this.#pools.clear();
    await this.#cleanup();
    this.#state = 'stopped';
  }

  async #cleanup(): Promise<void> {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    await this.#bundle?.dispose().catch(() => {});
    this.#bundle = undefined;
  }

  #resumeWaiters(pool: PluginThreadPool): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.resume(pool);
  }

  #failWaiters(error: WorkerManagerError): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.fail(error);
  }

  // ---- heartbeats, events, logs ------------------------------------------------------------------------------

  #startWatchdog(): void {
    const every = Math.max(10, Math.min(this.#limits.heartbeatMs, Math.floor(this.#limits.hangTimeoutMs / 4)));
    this.#watchdog = setInterval(this.#checkHeartbeats, every);
    // The watchdog does not keep the host alive: threads with calls in flight do.
    this.#watchdog.unref();
  }

  /** Creates a thread's own channel and returns the end to transfer to it. */
  #openThreadChannel(pool: PluginThreadPool, threadId: number): MessagePort | undefined {
    const thread = pool.track(threadId);
    if (thread === undefined) return undefined;
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (raw: unknown) => this.#onThreadMessage(thread, raw));
    // Neither keeps the host alive.
    port1.unref();
    thread.channel = port1;
    return port2;
  }

  #onThreadMessage(thread: ThreadState, raw: unknown): void {
    // Whatever a thread sends proves its event loop turns.
    thread.lastBeat = Date.now();
    if (raw === HEARTBEAT_TEXT) return;
    const message = this.#guard.admit(raw, thread.id);
    if (message === undefined) return;
    switch (message.type) {
      case 'event':
        this.#safely(() => this.#options.onEvent?.(message.event));
        return;
      case 'log': {
        const fields = message.fields === undefined ? { pluginId: this.#subject.plugin } : { pluginId: this.#subject.plugin, plugin: message.fields };
        this.#safely(() => this.#options.onLog?.(message.level, message.message, fields));
        return;
      }
      case 'heartbeat':
        return;
    }
  }

  /** Drops past a rate went on for `floodSeconds`: the instance is quarantined, as for any other misbehaviour. */
  #onFlood(detail: { kind: MessageKind; seconds: number; dropped: number }): boolean {
    if (this.#state !== 'running' && this.#state !== 'restarting') return false;
    const what = detail.kind === 'event' ? `events past limits.channel.eventsPerSecond (${this.#guard.limits.eventsPerSecond})` : `log lines past limits.channel.logBytesPerSecond (${this.#guard.limits.logBytesPerSecond} bytes)`;
    this.quarantine(
      this.#error('HOST_ERR_PLUGIN_FLOOD', `after sending ${what} for ${detail.seconds} consecutive seconds (${detail.dropped} dropped)`, {
        reason: 'flood',
        kind: detail.kind,
        seconds: detail.seconds,
        dropped: detail.dropped,
      }),
    );
    return true;
  }

  readonly #checkHeartbeats = (): void => {
    const limit = this.#limits.hangTimeoutMs;
    const now = Date.now();
    let suspects: ThreadState[] | undefined;
    for (const thread of this.#registry.values()) {
      if (thread.fault === undefined && thread.lastBeat !== 0 && (thread.inFlight > 0 || thread.streams.size > 0) && now - thread.lastBeat > limit) {
        (suspects ??= []).push(thread);
      }
    }
    if (suspects === undefined) return;
    // The host itself may have been too busy to read heartbeats; read what waits on each suspect's own channel
    // before blaming it (a sibling's messages say nothing about this thread).
    for (const thread of suspects) {
      const port = thread.channel;
      if (port === undefined) continue;
      for (let entry = receiveMessageOnPort(port); entry !== undefined; entry = receiveMessageOnPort(port)) this.#onThreadMessage(thread, entry.message);
    }
    const later = Date.now();
    for (const thread of suspects) {
      if (thread.fault === undefined && later - thread.lastBeat > limit) thread.pool.kill(thread.id, 'hang');
    }
  };

  /** The sandbox's own line about its plugin: flat fields, the plugin named by `pluginId` (see `onLog`). */
  #diagnostic(level: LogLevel, message: string, fields: Record<string, unknown>): void {
    this.#safely(() => this.#options.onLog?.(level, message, { pluginId: this.#subject.plugin, version: this.#subject.version, ...fields }));
  }

  #status(change: Omit<SandboxStatusChange, 'restarts' | 'crashes'>): void {
    this.#safely(() => this.#options.onStatus?.({ ...change, restarts: this.#restarts, crashes: this.#crashes }));
  }

  #safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      // A failing callback of the registry must not take the sandbox (or the host's event loop) down with it.
      try {
        this.#options.onLog?.('error', 'sandbox callback threw', { pluginId: this.#subject.plugin, version: this.#subject.version, error: messageOf(error) });
      } catch {
        // Nothing left to tell.
      }
    }
  }

  // ---- errors ------------------------------------------------------------------------------------------------

  #error(code: HostErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): WorkerManagerError {
    return subjectError(this.#subject, code, message, details, cause);
  }

  #notAvailable(method: string): WorkerManagerError {
    return notNegotiatedError(this.#subject, method);
  }

  #invalidParams(op: OperationEntry, params: unknown): WorkerManagerError {
    return invalidParamsError(this.#subject, op, params);
  }

  #stoppedError(): WorkerManagerError {
    return stoppedError(this.#subject);
  }

  #quarantinedError(cause: unknown = this.#quarantineCause): WorkerManagerError {
    const reason = cause instanceof WorkerManagerError ? cause.details?.['reason'] : undefined;
    const why =
      reason === 'foreign-events' || reason === 'flood'
        ? (cause as WorkerManagerError).message
        : `after more than ${this.#limits.restart.maxRestarts} restarts in ${this.#limits.restart.windowMs} ms`;
    return this.#error('HOST_ERR_PLUGIN_QUARANTINED', `plugin '${this.#subject.plugin}' instance '${this.#subject.instance}' is quarantined ${why}`, {}, cause);
  }

  #faultError(fault: ThreadFault, threadId: number): WorkerManagerError {
    const where = `plugin '${this.#subject.plugin}' (instance '${this.#subject.instance}') thread ${threadId}`;
    switch (fault.kind) {
      case 'oom':
        return this.#error('HOST_ERR_PLUGIN_OUT_OF_MEMORY', `${where} ran out of memory (heap limit ${this.#limits.heapMb} MB) and was stopped`, { threadId, reason: 'oom' });
      case 'hang':
        return this.#error('HOST_ERR_PLUGIN_HUNG', `${where} sent no heartbeat for ${this.#limits.hangTimeoutMs} ms and was replaced`, { threadId, reason: 'hang' });
      case 'timeout':
        return this.#error('HOST_ERR_PLUGIN_CRASHED', `${where} was replaced after a call on it overran its deadline`, { threadId, reason: 'timeout' });
      case 'crash':
        return this.#error(
          'HOST_ERR_PLUGIN_CRASHED',
          fault.error === undefined ? `${where} exited with code ${fault.exitCode ?? 'unknown'}` : `${where} died: ${messageOf(fault.error)}`,
          fault.exitCode === undefined ? { threadId, reason: 'crash' } : { threadId, reason: 'crash', exitCode: fault.exitCode },
          fault.error,
        );
    }
  }

  #lostError(error: unknown): WorkerManagerError {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ERR_WORKER_OUT_OF_MEMORY') return this.#error('HOST_ERR_PLUGIN_OUT_OF_MEMORY', `plugin '${this.#subject.plugin}' ran out of memory (heap limit ${this.#limits.heapMb} MB)`, { reason: 'oom' });
    if ((error as { name?: unknown } | null)?.name === 'DataCloneError') {
      return this.#error('HOST_ERR_PLUGIN_PROTOCOL', `a value could not be passed to or from plugin '${this.#subject.plugin}': ${messageOf(error)}`);
    }
    return this.#error('HOST_ERR_PLUGIN_CRASHED', `plugin '${this.#subject.plugin}' thread was lost: ${messageOf(error)}`, { reason: 'crash' }, error);
  }

  #lostCallError(call: PendingCall, error: unknown): WorkerManagerError {
    // The thread's own fault first: the call that crashed a thread gets the crash, even if it spent the budget.
    const thread = call.threadId === undefined ? undefined : call.pool.thread(call.threadId);
    if (thread?.fault !== undefined) return this.#faultError(thread.fault, thread.id);
    if (this.#state === 'stopping' || this.#state === 'stopped') return this.#stoppedError();
    if (this.#state === 'quarantined') return this.#quarantinedError();
    return this.#lostError(error);
  }

  /** Rebuilds an error that crossed the thread boundary, naming the plugin when the plugin did not. */
  #rebuild(wire: unknown): WorkerManagerError {
    return rebuildError(this.#subject, wire);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
