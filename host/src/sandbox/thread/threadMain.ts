/**
 * The entry of every plugin thread: piscina calls the default export with each {@link CallRequest}. It loads the
 * plugin once, runs `setup`, then serves calls, validating params and results against the contract, so a plugin
 * never sees a request outside its contract and the host never gets an answer outside it either.
 */
import { MessagePort, threadId, workerData } from 'node:worker_threads';
import {
  CredentialProviderContract,
  isPluginDefinition,
  pluginMetadataDrift,
  toWorkerManagerError,
  WorkerEvent,
  WorkerManagerError,
  WorkerProviderContract,
  type CallContext,
  type Contract,
  type OwnerLabels,
  type PluginContext,
  type PluginLogger,
  type SerializedError,
} from '@worker-manager/plugin-sdk';
import { CallRequest, HEARTBEAT_TEXT, ThreadInit, type CallReply, type ChannelMessage, type LogLevel } from '@worker-manager/plugin-sdk/internal';
import { Compile } from 'typebox/compile';
import { hostError } from '../../errors.ts';
import { contractValidators, schemaIssues, type OperationValidators } from '../contractValidators.ts';
import { pumpStream, type ActiveStream } from './streamPump.ts';

type Handler = (params: unknown, call: CallContext) => unknown;
type Handlers = Record<string, unknown> & { close?: () => unknown };

const requestCheck = Compile(CallRequest);
const eventCheck = Compile(WorkerEvent);
const init = readInit();
const subject = { plugin: init.pluginId, instance: init.instance, version: init.pluginVersion };
const operations = contractValidators((init.kind === 'provider' ? WorkerProviderContract : CredentialProviderContract) as Contract);
const negotiated = new Set(init.methods);
const shutdown = new AbortController();
const streams = new Set<ActiveStream>();
/**
 * This thread's own channel to the host: a port the host transfers with `$ready`, so whatever arrives on the host's end
 * came from this thread. Messages sent before it arrives (setup may log) wait here, a bounded few.
 */
let channel: MessagePort | undefined;
const early: string[] = [];
const EARLY_MAX = 256;

function attach(port: MessagePort): void {
  if (channel !== undefined) {
    port.close();
    return;
  }
  channel = port;
  // The channel must not keep a thread alive on its own.
  port.unref();
  for (const text of early.splice(0)) port.postMessage(text);
  beat();
}

/** Sends a channel message as JSON text (`type` first: the host reads the kind of a refused message from it). */
function send(message: ChannelMessage): void {
  const text = JSON.stringify(message);
  if (channel !== undefined) channel.postMessage(text);
  else if (early.length < EARLY_MAX) early.push(text);
}

function beat(): void {
  channel?.postMessage(HEARTBEAT_TEXT);
}
const heartbeatTimer = setInterval(beat, init.heartbeatMs);
heartbeatTimer.unref();

let handlers: Handlers | undefined;
let failure: WorkerManagerError | undefined;
const loading = loadPlugin().then(
  (loaded) => {
    handlers = loaded;
  },
  (error: unknown) => {
    failure = toWorkerManagerError(error);
  },
);

/**
 * Serves one call. Never throws: every failure becomes `{ ok: false, error }` so the thread survives it. Written
 * without `async` on purpose: on the hot path it returns the handler's promise chained once, which saves microtask
 * turns per call (this path is measured by the rpc-overhead bench).
 */
export default function handleCall(task: unknown): CallReply | Promise<CallReply> {
  if (!requestCheck.Check(task)) {
    return fail(hostError('HOST_ERR_PLUGIN_PROTOCOL', 'plugin thread received a malformed call request', { details: { ...subject } }));
  }
  // The channel comes with `$ready`, which the host sends before the plugin has loaded: heartbeats start now.
  if (task.method === '$ready' && task.port instanceof MessagePort) attach(task.port);
  if (handlers === undefined) return loading.then(() => (handlers === undefined ? fail(failure ?? loadFailed()) : serve(task, handlers)));
  return serve(task, handlers);
}

function serve(task: CallRequest, loaded: Handlers): CallReply | Promise<CallReply> {
  const method = task.method;
  if (method.charCodeAt(0) === 36 /* $ */) return control(method, loaded);
  const op = operations.get(method);
  const fn = loaded[method];
  if (op === undefined || !negotiated.has(method) || typeof fn !== 'function') {
    return fail(new WorkerManagerError('WM_ERR_COMPATIBILITY', `operation '${method}' is not available on plugin '${init.pluginId}'`, { details: { ...subject, method } }));
  }
  if (!op.params.Check(task.params)) {
    const issues = schemaIssues(op.params, task.params);
    return fail(
      new WorkerManagerError('WM_ERR_VALIDATION', `invalid params for '${method}' at ${issues[0]?.instancePath || '/'}: ${issues[0]?.message ?? 'invalid'}`, {
        details: { ...subject, method, instancePath: issues[0]?.instancePath ?? '', issues },
      }),
    );
  }
  const deadline = task.deadline;
  if (deadline !== undefined && Date.now() >= deadline) {
    // It waited in a queue past its deadline; the caller has its timeout already, so do not run it at all.
    return fail(new WorkerManagerError('WM_ERR_TIMEOUT', `call '${method}' reached the plugin thread after its deadline`, { details: { ...subject, method } }));
  }
  if (op.kind === 'stream') return openStream(op, fn as Handler, loaded, task).catch((error: unknown) => fail(pluginError(error)));
  let result: unknown;
  try {
    result = (fn as Handler).call(loaded, task.params, new Call(deadline, task.correlationId));
  } catch (error) {
    return fail(pluginError(error));
  }
  if (result instanceof Promise) return result.then((value: unknown) => reply(op, value), (error: unknown) => fail(pluginError(error)));
  return reply(op, result);
}

function reply(op: OperationValidators, value: unknown): CallReply {
  if (op.output.Check(value)) return { ok: true, value };
  const issues = schemaIssues(op.output, value);
  return fail(
    hostError('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${init.pluginId}' returned an invalid result for '${op.name}' at ${issues[0]?.instancePath || '/'}`, {
      details: { ...subject, method: op.name, issues },
    }),
  );
}

function loadFailed(): WorkerManagerError {
  return hostError('HOST_ERR_PLUGIN_LOAD_FAILED', 'plugin did not load', { details: { ...subject } });
}

/**
 * A plugin's failure as a typed error. A plain Error becomes WM_ERR_INTERNAL; its Node error code (ERR_ACCESS_DENIED,
 * ENOENT) is kept in the details because it names the failure without carrying data.
 */
export function pluginError(error: unknown): WorkerManagerError {
  const typed = toWorkerManagerError(error);
  const code = typed === error ? undefined : (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return typed;
  return new WorkerManagerError(typed.code, typed.message, { details: { ...typed.details, errorCode: code }, cause: error });
}

/** The per-call context. The signal is built on first use: most handlers never look at it. */
class Call implements CallContext {
  readonly correlationId: string | undefined;
  readonly #deadline: number | undefined;
  #signal: AbortSignal | undefined;

  constructor(deadline: number | undefined, correlationId: string | undefined) {
    this.#deadline = deadline;
    this.correlationId = correlationId;
  }

  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      this.#signal =
        this.#deadline === undefined
          ? shutdown.signal
          : AbortSignal.any([shutdown.signal, AbortSignal.timeout(Math.max(0, this.#deadline - Date.now()))]);
    }
    return this.#signal;
  }
}

async function openStream(op: OperationValidators, fn: Handler, self: Handlers, task: CallRequest): Promise<CallReply> {
  const port = task.port;
  if (!(port instanceof MessagePort)) {
    return fail(hostError('HOST_ERR_PLUGIN_PROTOCOL', `stream operation '${op.name}' called without a port`, { details: { ...subject, method: op.name } }));
  }
  // A stream outlives its setup deadline; its signal ends on cancel or shutdown instead.
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, shutdown.signal]);
  let source: unknown;
  try {
    source = await fn.call(self, task.params, { signal, correlationId: task.correlationId });
  } catch (error) {
    port.close();
    throw error;
  }
  const iterate = (source as { [Symbol.asyncIterator]?: unknown } | null | undefined)?.[Symbol.asyncIterator];
  if (typeof iterate !== 'function') {
    port.close();
    return fail(hostError('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${init.pluginId}' did not return an AsyncIterable from '${op.name}'`, { details: { ...subject, method: op.name } }));
  }
  const iterator = (iterate as () => AsyncIterator<unknown>).call(source);
  // The task ends here: holding it for the stream's life would take a concurrency slot per open stream.
  pumpStream({ iterator, port, item: op.output, stop, streams, protocolError: (issues) => streamProtocolError(op.name, issues), toError: pluginError });
  return { ok: true, value: null };
}

function streamProtocolError(method: string, issues: unknown): SerializedError {
  return serialize(hostError('HOST_ERR_PLUGIN_PROTOCOL', `plugin '${init.pluginId}' streamed an invalid item from '${method}'`, { details: { ...subject, method, issues } }));
}

async function control(method: string, loaded: Handlers): Promise<CallReply> {
  if (method === '$ready') return { ok: true, value: { threadId } };
  if (method === '$close') {
    shutdown.abort();
    for (const stream of streams) stream.cancel();
    clearInterval(heartbeatTimer);
    try {
      await loaded.close?.();
    } catch (error) {
      return fail(pluginError(error));
    }
    return { ok: true, value: null };
  }
  return fail(hostError('HOST_ERR_PLUGIN_PROTOCOL', `unknown control call '${method}'`, { details: { ...subject } }));
}

async function loadPlugin(): Promise<Handlers> {
  let mod: { default?: unknown };
  try {
    mod = (await import(init.entry)) as { default?: unknown };
  } catch (error) {
    throw hostError('HOST_ERR_PLUGIN_LOAD_FAILED', `plugin '${init.pluginId}' entry could not be loaded: ${messageOf(error)}`, {
      details: { ...subject },
      cause: toWorkerManagerError(error),
    });
  }
  const def = mod.default;
  if (!isPluginDefinition(def)) {
    throw hostError('HOST_ERR_PLUGIN_LOAD_FAILED', `plugin '${init.pluginId}' entry has no definePlugin(...) default export`, { details: { ...subject } });
  }
  if (init.metadata !== undefined) {
    // The host negotiated (capabilities, host API, config schema) from the package.json before any plugin code ran;
    // a definition that says otherwise would be served on stale facts, so it is refused with each difference named.
    const drift = pluginMetadataDrift({ version: init.pluginVersion, workerManager: init.metadata }, def);
    if (drift.length > 0) {
      throw hostError(
        'HOST_ERR_PLUGIN_METADATA_DRIFT',
        `plugin '${init.pluginId}@${init.pluginVersion}' (instance '${init.instance}'): package.json differs from its definePlugin call: ${drift.join('; ')}`,
        { details: { ...subject, differences: drift } },
      );
    }
  }
  if (def.id !== init.pluginId || def.version !== init.pluginVersion || def.kind !== init.kind) {
    throw hostError(
      'HOST_ERR_PLUGIN_LOAD_FAILED',
      `plugin entry defines ${def.kind} '${def.id}@${def.version}', but its package says ${init.kind} '${init.pluginId}@${init.pluginVersion}'`,
      { details: { ...subject, found: { id: def.id, version: def.version, kind: def.kind } } },
    );
  }
  let loaded: unknown;
  try {
    loaded = await def.setup(pluginContext());
  } catch (error) {
    throw hostError('HOST_ERR_PLUGIN_SETUP_FAILED', `plugin '${init.pluginId}' setup failed for instance '${init.instance}': ${messageOf(error)}`, {
      details: { ...subject },
      cause: toWorkerManagerError(error),
    });
  }
  if (typeof loaded !== 'object' || loaded === null) {
    throw hostError('HOST_ERR_PLUGIN_SETUP_FAILED', `plugin '${init.pluginId}' setup returned no handlers`, { details: { ...subject } });
  }
  return loaded as Handlers;
}

function pluginContext(): PluginContext<unknown> {
  const owner: OwnerLabels = { 'worker-manager/host': init.hostId, 'worker-manager/instance': init.instance };
  const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    const text = String(message);
    try {
      send(fields === undefined ? { type: 'log', level, message: text } : { type: 'log', level, message: text, fields });
    } catch {
      // Fields that are not JSON (a BigInt, a cycle) must not turn a log line into a crash.
      send({ type: 'log', level, message: text, fields: { logFieldsDropped: true } });
    }
  };
  const logger: PluginLogger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  return Object.freeze({
    config: init.config,
    instance: init.instance,
    hostId: init.hostId,
    stateDir: init.stateDir,
    owner: Object.freeze(owner),
    logger: Object.freeze(logger),
    signal: shutdown.signal,
    emit(event: WorkerEvent): void {
      if (!eventCheck.Check(event)) {
        const issues = schemaIssues(eventCheck, event);
        throw new WorkerManagerError('WM_ERR_VALIDATION', `invalid worker event at ${issues[0]?.instancePath || '/'}: ${issues[0]?.message ?? 'invalid'}`, {
          details: { ...subject, issues },
        });
      }
      send({ type: 'event', event });
    },
  });
}

function readInit(): ThreadInit {
  if (!Compile(ThreadInit).Check(workerData)) {
    // Without a valid init there is no channel to report on; failing the thread start is the only honest answer.
    throw new Error('plugin thread started without a valid ThreadInit');
  }
  return workerData as ThreadInit;
}

function fail(error: WorkerManagerError): CallReply {
  return { ok: false, error: serialize(error) };
}

/** Error data that can always cross the thread: plugin-supplied details may hold values postMessage rejects. */
function serialize(error: WorkerManagerError): SerializedError {
  const data = error.toJSON();
  try {
    return JSON.parse(JSON.stringify(data)) as SerializedError;
  } catch {
    const { details: _dropped, ...rest } = data;
    return { ...rest, details: { ...subject, detailsDropped: true } };
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
