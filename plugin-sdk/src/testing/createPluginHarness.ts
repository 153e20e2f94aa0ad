import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { acceptCapabilities } from '../contracts/acceptCapabilities.ts';
import { CredentialProviderContract } from '../contracts/credentialProvider.ts';
import type { CallContext, CallOptions, Contract, Operation, Proxied } from '../contracts/operation.ts';
import type { SecretMount } from '../contracts/secretRef.ts';
import type { RuntimeSpec } from '../contracts/runtimeSpec.ts';
import { WorkerEvent } from '../contracts/workerEvent.ts';
import { capabilitiesForSpec, WorkerProviderContract } from '../contracts/workerProvider.ts';
import type { OwnerLabels, PluginContext, PluginDefinition, PluginLogger } from '../definePlugin.ts';
import { isPluginDefinition } from '../definePlugin.ts';
import { toWorkerManagerError, WorkerManagerError } from '../errors/WorkerManagerError.ts';
import type { PluginKind } from '../pluginMetadata.ts';
import type { LogLevel } from '../protocol.ts';
import { formatIssues, schemaIssues, type SchemaIssue } from './schemaIssues.ts';

/** The contract a plugin of kind `K` implements. */
export type ContractFor<K extends PluginKind> = K extends 'provider' ? WorkerProviderContract : CredentialProviderContract;

/** Options of {@link createPluginHarness}. */
export interface PluginHarnessOptions {
  /** The instance config, as it would appear in the host manifest; defaults from the schema are applied. */
  config: unknown;
  /** The instance's state directory. When absent, a temporary one is made and removed by `close()`. */
  stateDir?: string;
  /** Host id for the owner labels; default `test-host`. */
  hostId?: string;
  /** Instance name; default `test`. */
  instance?: string;
}

/** A record the plugin wrote through `ctx.logger`. */
export interface HarnessLogRecord {
  level: LogLevel;
  message: string;
  fields?: Record<string, unknown>;
}

/** An event the plugin emitted that does not match the `WorkerEvent` schema (the host would drop it). */
export interface RejectedEvent {
  event: unknown;
  issues: SchemaIssue[];
}

/**
 * A plugin running in-process, seen through the same checks the host applies: what {@link createPluginHarness}
 * returns. Every array is live: it grows while the plugin runs.
 */
export interface PluginHarness<K extends PluginKind> {
  /** The typed proxy: every contract operation, with params, results and errors treated as the host treats them. */
  readonly proxy: Proxied<ContractFor<K>>;
  /** Valid events the plugin emitted, in order. */
  readonly events: WorkerEvent[];
  /** Emitted values that failed the `WorkerEvent` schema. */
  readonly rejectedEvents: RejectedEvent[];
  /** What the plugin logged. */
  readonly logs: HarnessLogRecord[];
  readonly owner: OwnerLabels;
  readonly stateDir: string;
  /** The config the plugin received (after defaults). */
  readonly config: unknown;
  /** Declared capabilities the host would accept (known, of this contract, at a compatible version). */
  readonly capabilities: Readonly<Record<string, string>>;
  /** Operations the host would route to this plugin. */
  readonly methods: readonly string[];
  /** Calls the plugin's `close` handler and aborts the context signal. Safe to call twice. */
  close(): Promise<void>;
}

const eventValidator = Compile(WorkerEvent);
const validators = new WeakMap<TSchema, Validator>();

function validatorOf(schema: TSchema): Validator {
  let v = validators.get(schema);
  if (v === undefined) {
    v = Compile(schema);
    validators.set(schema, v);
  }
  return v;
}

/** What crosses a thread boundary is data: clone it as the host's MessagePort would. */
function crossBoundary<T>(value: T, what: string, subject: Record<string, unknown>): T {
  try {
    return structuredClone(value);
  } catch (cause) {
    throw new WorkerManagerError('WM_ERR_INTERNAL', `${what} cannot cross the thread boundary (not structured-cloneable)`, { cause, details: subject });
  }
}

/** Errors cross the boundary as data and are rebuilt from their code (STYLE 3). */
function asHostSees(error: unknown, subject: Record<string, unknown>): WorkerManagerError {
  const wm = toWorkerManagerError(error);
  try {
    return WorkerManagerError.fromJSON(structuredClone(wm.toJSON()));
  } catch (cause) {
    return new WorkerManagerError('WM_ERR_INTERNAL', `plugin error ${wm.code} cannot cross the thread boundary`, { cause, details: subject });
  }
}

/**
 * The signal of one call: the harness lifetime, the caller's signal and the deadline. The deadline timer is ref'd
 * (unlike `AbortSignal.timeout`), so a call that waits on a hung handler keeps the process alive until it fails.
 */
function callSignal(own: AbortSignal, options: CallOptions | undefined): { signal: AbortSignal; dispose(): void } {
  const signals = [own];
  if (options?.signal !== undefined) signals.push(options.signal);
  let timer: NodeJS.Timeout | undefined;
  if (options?.timeoutMs !== undefined) {
    const deadline = new AbortController();
    timer = setTimeout(() => deadline.abort(new DOMException(`timed out after ${options.timeoutMs} ms`, 'TimeoutError')), options.timeoutMs);
    signals.push(deadline.signal);
  }
  return { signal: AbortSignal.any(signals), dispose: () => clearTimeout(timer) };
}

/** Resolves with the handler's promise, or rejects with WM_ERR_TIMEOUT / the abort reason when the signal fires. */
function raceSignal<T>(promise: Promise<T>, signal: AbortSignal, operation: string, timeoutMs: number | undefined): Promise<T> {
  if (signal.aborted) promise.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      if (reason instanceof DOMException && reason.name === 'TimeoutError') {
        reject(new WorkerManagerError('WM_ERR_TIMEOUT', `${operation} did not finish within ${timeoutMs ?? '?'} ms`, { details: { operation, timeoutMs } }));
      } else {
        reject(new WorkerManagerError('WM_ERR_TIMEOUT', `${operation} was aborted`, { details: { operation }, cause: reason }));
      }
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

type AnyHandler = (params: unknown, call: CallContext) => unknown;

/**
 * Runs a plugin in-process for its author's unit tests, behind the checks the host applies to a real plugin thread:
 *
 * - the config is validated against `configSchema` (defaults applied first); a bad config is `WM_ERR_CONFIGURATION`
 *   with every failing path;
 * - `setup` gets a real {@link PluginContext}: events go to `harness.events`, logs to `harness.logs`;
 * - operations whose capability the plugin does not declare are refused with `WM_ERR_COMPATIBILITY`, as are specs
 *   that need an undeclared capability ({@link capabilitiesForSpec}) and `getLogs` with `follow` without
 *   `worker.logs.follow`;
 * - params are validated against the contract (`WM_ERR_VALIDATION`, with `instancePath` in the details), results
 *   and stream items too (`WM_ERR_INTERNAL` naming the operation);
 * - params, results and errors are cloned as they would be between threads; anything thrown that is not a
 *   `WorkerManagerError` becomes `WM_ERR_INTERNAL`.
 *
 * @example
 * const h = await createPluginHarness(plugin, { config: {} });
 * after(() => h.close());
 * const worker = await h.proxy.createWorker({ workerId: 'w1', spec: { command: ['sleep', '600'] } });
 */
export async function createPluginHarness<K extends PluginKind, S extends TSchema>(
  definition: PluginDefinition<K, S>,
  options: PluginHarnessOptions,
): Promise<PluginHarness<K>> {
  if (!isPluginDefinition(definition)) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'createPluginHarness needs the value returned by definePlugin()');
  }
  const instance = options.instance ?? 'test';
  const hostId = options.hostId ?? 'test-host';
  const subject = { plugin: definition.id, instance, version: definition.version };
  const contract: Contract = definition.kind === 'provider' ? WorkerProviderContract : CredentialProviderContract;

  let configValidator: Validator;
  try {
    configValidator = Compile(definition.configSchema);
  } catch (cause) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `plugin '${definition.id}': configSchema is not a usable schema`, { cause, details: subject });
  }
  const config = configValidator.Default(structuredClone(options.config));
  if (!configValidator.Check(config)) {
    const issues = schemaIssues(configValidator, config);
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `invalid config for plugin '${definition.id}' instance '${instance}': ${formatIssues(issues)}`, {
      details: { ...subject, issues },
    });
  }

  const ownsStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(path.join(os.tmpdir(), `wm-harness-${definition.id}-`)));
  await mkdir(stateDir, { recursive: true });

  const events: WorkerEvent[] = [];
  const rejectedEvents: RejectedEvent[] = [];
  const logs: HarnessLogRecord[] = [];
  const owner: OwnerLabels = { 'worker-manager/host': hostId, 'worker-manager/instance': instance };
  const lifetime = new AbortController();
  const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>): void => {
    logs.push(fields === undefined ? { level, message } : { level, message, fields });
  };
  const logger: PluginLogger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  const context: PluginContext<unknown> = {
    config,
    instance,
    hostId,
    stateDir,
    owner,
    logger,
    signal: lifetime.signal,
    emit(event: WorkerEvent): void {
      if (eventValidator.Check(event)) events.push(structuredClone(event));
      else rejectedEvents.push({ event, issues: schemaIssues(eventValidator, event) });
    },
  };

  const handlers = (await definition.setup(context as PluginContext<never>)) as unknown as Record<string, AnyHandler | undefined> & {
    close?: () => unknown;
  };
  const capabilities = acceptCapabilities(contract.name, definition.capabilities).accepted;
  const methods = Object.entries(contract.operations)
    .filter(([, op]) => capabilities[op.capability] !== undefined)
    .map(([name]) => name);

  let closed = false;
  const refuse = (operation: string, capability: string): WorkerManagerError =>
    new WorkerManagerError('WM_ERR_COMPATIBILITY', `plugin '${definition.id}' does not declare ${capability}, needed by ${operation}`, {
      details: { ...subject, operation, capability },
    });

  /** Every check the host makes before a call reaches the plugin; returns the params as the plugin receives them. */
  const admit = (operation: string, op: Operation, params: unknown): unknown => {
    if (closed) throw new WorkerManagerError('WM_ERR_INTERNAL', `plugin '${definition.id}' instance '${instance}' is closed`, { details: { ...subject, operation } });
    if (capabilities[op.capability] === undefined) throw refuse(operation, op.capability);
    const v = validatorOf(op.params);
    if (!v.Check(params)) {
      const issues = schemaIssues(v, params);
      throw new WorkerManagerError('WM_ERR_VALIDATION', `invalid params for ${operation}: ${formatIssues(issues)}`, {
        details: { operation, instancePath: issues[0]?.instancePath ?? '', issues },
      });
    }
    if (operation === 'getLogs' && (params as { options?: { follow?: boolean } }).options?.follow === true && capabilities['worker.logs.follow'] === undefined) {
      throw refuse(operation, 'worker.logs.follow');
    }
    if (operation === 'createWorker') {
      const p = params as { spec: RuntimeSpec; secrets?: SecretMount[] };
      const missing = capabilitiesForSpec(p.spec, p.secrets).filter((c) => capabilities[c] === undefined);
      if (missing.length > 0) {
        throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `plugin '${definition.id}' cannot run this spec: it does not declare ${missing.join(', ')}`, {
          details: { ...subject, operation, missing },
        });
      }
    }
    const handler = handlers[operation];
    if (typeof handler !== 'function') {
      throw new WorkerManagerError('WM_ERR_INTERNAL', `plugin '${definition.id}' declares ${op.capability} but has no ${operation} handler`, {
        details: { ...subject, operation },
      });
    }
    return crossBoundary(params, `params of ${operation}`, { ...subject, operation });
  };

  const callContext = (signal: AbortSignal, options: CallOptions | undefined): CallContext => ({ signal, correlationId: options?.correlationId });

  const proxy: Record<string, (params: unknown, options?: CallOptions) => Promise<unknown>> = {};
  for (const [operation, op] of Object.entries(contract.operations)) {
    if (op.kind === 'call') {
      const resultValidator = validatorOf(op.result);
      proxy[operation] = async (params, options) => {
        const admitted = admit(operation, op, params);
        const { signal, dispose } = callSignal(lifetime.signal, options);
        let result: unknown;
        try {
          const handler = handlers[operation] as AnyHandler;
          result = await raceSignal(Promise.resolve().then(() => handler(admitted, callContext(signal, options))), signal, operation, options?.timeoutMs);
        } catch (error) {
          throw asHostSees(error, { ...subject, operation });
        } finally {
          dispose();
        }
        if (!resultValidator.Check(result)) {
          const issues = schemaIssues(resultValidator, result);
          throw new WorkerManagerError('WM_ERR_INTERNAL', `plugin '${definition.id}' returned an invalid result for ${operation}: ${formatIssues(issues)}`, {
            details: { ...subject, operation, issues },
          });
        }
        return crossBoundary(result, `result of ${operation}`, { ...subject, operation });
      };
    } else {
      const itemValidator = validatorOf(op.item);
      proxy[operation] = async (params, options) => {
        const admitted = admit(operation, op, params);
        const controller = new AbortController();
        const call = callSignal(lifetime.signal, options);
        const signal = AbortSignal.any([call.signal, controller.signal]);
        // The deadline bounds opening the stream; once open, it runs until it ends, is cancelled or aborted.
        let source: AsyncIterable<unknown>;
        try {
          const handler = handlers[operation] as AnyHandler;
          source = await raceSignal(Promise.resolve().then(() => handler(admitted, callContext(signal, options)) as AsyncIterable<unknown>), signal, operation, options?.timeoutMs);
          if (source === null || typeof source !== 'object' || typeof (source as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== 'function') {
            throw new WorkerManagerError('WM_ERR_INTERNAL', `plugin '${definition.id}' returned no async iterable for ${operation}`, { details: { ...subject, operation } });
          }
        } catch (error) {
          controller.abort();
          throw asHostSees(error, { ...subject, operation });
        } finally {
          call.dispose();
        }
        return harnessStream(source, { operation, validator: itemValidator, controller, subject: { ...subject, operation } });
      };
    }
  }

  return {
    proxy: proxy as unknown as Proxied<ContractFor<K>>,
    events,
    rejectedEvents,
    logs,
    owner,
    stateDir,
    config,
    capabilities,
    methods,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      lifetime.abort(new WorkerManagerError('WM_ERR_INTERNAL', 'plugin harness closed'));
      try {
        await handlers.close?.();
      } finally {
        if (ownsStateDir) await rm(stateDir, { recursive: true, force: true });
      }
    },
  };
}

interface StreamOptions {
  operation: string;
  validator: Validator;
  controller: AbortController;
  subject: Record<string, unknown>;
}

/**
 * The host-side view of a stream operation: items validated and cloned one by one; `cancel()` aborts the handler's
 * signal and ends the iteration at once, even while the handler is waiting for output.
 */
function harnessStream(source: AsyncIterable<unknown>, o: StreamOptions): AsyncIterable<unknown> & { cancel(): void } {
  const it = source[Symbol.asyncIterator]();
  let finished = false;
  let wake!: (r: IteratorResult<unknown>) => void;
  const cancelled = new Promise<IteratorResult<unknown>>((resolve) => {
    wake = resolve;
  });
  const finish = (): void => {
    if (finished) return;
    finished = true;
    o.controller.abort();
    wake({ done: true, value: undefined });
    // The handler's generator may be suspended on an await; it ends when it sees the aborted signal.
    Promise.resolve()
      .then(() => it.return?.())
      .catch(() => {});
  };
  const iterator: AsyncIterator<unknown> = {
    async next(): Promise<IteratorResult<unknown>> {
      if (finished) return { done: true, value: undefined };
      let r: IteratorResult<unknown>;
      try {
        r = await Promise.race([it.next(), cancelled]);
      } catch (error) {
        finished = true;
        o.controller.abort();
        throw asHostSees(error, o.subject);
      }
      if (finished) return { done: true, value: undefined };
      if (r.done === true) {
        finished = true;
        o.controller.abort();
        return { done: true, value: undefined };
      }
      if (!o.validator.Check(r.value)) {
        const issues = schemaIssues(o.validator, r.value);
        finish();
        throw new WorkerManagerError('WM_ERR_INTERNAL', `plugin stream ${o.operation} produced an invalid item: ${formatIssues(issues)}`, {
          details: { ...o.subject, issues },
        });
      }
      return { done: false, value: crossBoundary(r.value, `an item of ${o.operation}`, o.subject) };
    },
    async return(): Promise<IteratorResult<unknown>> {
      finish();
      return { done: true, value: undefined };
    },
  };
  return {
    cancel: finish,
    [Symbol.asyncIterator]: () => iterator,
  };
}
