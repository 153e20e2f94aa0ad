/**
 * The entry of an out-of-process sandbox (bundled to `sandbox.mjs`, run by `node` inside bubblewrap). It hosts the
 * instance's piscina pool with a {@link PluginSandbox} in the restricted tier (Node's permission model on each plugin
 * thread, as a second layer inside the confinement), and serves the host's frames from stdin, answering on stdout.
 * This code is trusted; the plugin threads beside it are not, which is why the host checks everything it writes.
 */
import { createInterface } from 'node:readline';
import { CredentialProviderContract, toWorkerManagerError, WorkerProviderContract, type CallOptions } from '@worker-manager/plugin-sdk';
import { Compile } from 'typebox/compile';
import { PluginSandbox, type SandboxStatusChange, type SandboxStream } from '../PluginSandbox.ts';
import { startLoopbackRelay } from '../egress/loopbackRelay.ts';
import { HostFrame, type SandboxFrame, type SandboxInit } from './frames.ts';

const hostFrame = Compile(HostFrame);

// SIGUSR1 would open the inspector on this unrestricted main thread, and a plugin thread may signal its own process
// (the permission model does not cover signals): a debugger there would be outside the threads' permission layer.
// A listener replaces Node's default action; `--disable-sigusr1` does the same where Node has it (22.14+).
process.on('SIGUSR1', () => {});

// Lines are written in batches: everything sent in one tick (a burst of replies piscina settled together) goes in one
// write, since a pipe write per frame costs more than the call; waiting longer than the tick would only add latency.
let queued: Array<string | (() => string)> = [];
let flushScheduled = false;
/** A line is text, or made when the batch is written (the refusal counts: one frame per batch, however many). */
function send(text: string | (() => string)): void {
  queued.push(text);
  if (flushScheduled) return;
  flushScheduled = true;
  process.nextTick(() => {
    flushScheduled = false;
    const out = queued.map((line) => (typeof line === 'string' ? line : line())).join('\n') + '\n';
    queued = [];
    process.stdout.write(out);
  });
}
const frame = (f: SandboxFrame): void => send(JSON.stringify(f));

let sandbox: PluginSandbox | undefined;
let refusedQueued = false;
const calls = new Map<number, AbortController>();
const streams = new Map<number, { iterator: AsyncIterator<unknown>; stream: SandboxStream }>();

function sendStatus(change: SandboxStatusChange): void {
  frame({
    type: 'status', state: change.state, reason: change.reason,
    ...(change.code === undefined ? {} : { code: change.code }),
    ...(change.message === undefined ? {} : { message: change.message.slice(0, 4_096) }),
    ...(change.delayMs === undefined ? {} : { delayMs: change.delayMs }),
  });
}

async function init(message: SandboxInit): Promise<void> {
  const limits = message.limits as ConstructorParameters<typeof PluginSandbox>[0]['limits'];
  const env = { ...message.env };
  if (message.egress !== undefined) {
    await startLoopbackRelay(message.egress.socketPath, message.egress.proxyPort);
    const proxy = `http://127.0.0.1:${message.egress.proxyPort}`;
    env['HTTPS_PROXY'] ??= proxy;
    env['HTTP_PROXY'] ??= proxy;
    env['https_proxy'] ??= proxy;
    env['http_proxy'] ??= proxy;
  }
  sandbox = new PluginSandbox({
    pluginId: message.pluginId,
    pluginVersion: message.pluginVersion,
    kind: message.kind,
    instance: message.instance,
    hostId: message.hostId,
    entry: message.bundle.pluginUrl,
    packageDir: message.packageDir,
    config: message.config,
    stateDir: message.stateDir,
    isolation: 'restricted',
    env,
    limits,
    methods: message.methods,
    ...(message.metadata === undefined ? {} : { metadata: message.metadata }),
    contract: message.kind === 'provider' ? WorkerProviderContract : CredentialProviderContract,
    prebuilt: message.bundle,
    onEvent: (event) => send(JSON.stringify({ type: 'event', event })),
    // The host nests whatever fields arrive under `plugin`: a plugin's own fields go as they are, without the inner
    // sandbox's wrapping; the inner sandbox's own diagnostics go flat.
    onLog: (level, text, fields) => {
      const { pluginId: _id, plugin, ...rest } = fields ?? {};
      const own = plugin !== undefined && typeof plugin === 'object' && Object.keys(rest).length === 0 ? (plugin as Record<string, unknown>) : fields === undefined || Object.keys(fields).length <= 1 ? undefined : { ...rest, ...(plugin === undefined ? {} : { plugin }) };
      send(JSON.stringify(own === undefined ? { type: 'log', level, message: text } : { type: 'log', level, message: text, fields: own }));
    },
    // In the batch where the refusal happened, so the host counts it before any later message of the thread.
    onRefused: () => {
      if (refusedQueued) return;
      refusedQueued = true;
      send(() => {
        refusedQueued = false;
        return JSON.stringify({ type: 'refused', counts: sandbox?.stats().refused ?? [] });
      });
    },
    onStatus: (change) => {
      if (change.reason === 'started') return;
      // The calls the last fault failed are answered with their own error first: on 'quarantined' the host fails
      // every call still open, so sent at once it would overtake them. The other states go at once, so that a caller
      // whose call failed already sees the instance restarting.
      if (change.state === 'quarantined') {
        setImmediate(() => sendStatus(change));
        return;
      }
      sendStatus(change);
    },
  });
  // The channel's own heartbeat: the host knows the sandbox process answers even when no call is running.
  setInterval(() => send('{"type":"heartbeat"}'), Math.max(50, Math.min(1_000, limits.heartbeatMs))).unref();
  try {
    await sandbox.start();
    frame({ type: 'ready' });
  } catch (error) {
    frame({ type: 'fatal', error: toWorkerManagerError(error).toJSON() });
  }
}

async function call(id: number, method: string, params: unknown, timeoutMs: number | undefined, correlationId: string | undefined): Promise<void> {
  const box = sandbox;
  if (box === undefined) return;
  const controller = new AbortController();
  calls.set(id, controller);
  const options: CallOptions = { signal: controller.signal };
  if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
  if (correlationId !== undefined) options.correlationId = correlationId;
  try {
    const proxy = box.proxy() as Record<string, (p: unknown, o: CallOptions) => Promise<unknown>>;
    const fn = proxy[method];
    if (fn === undefined) throw new Error(`no operation '${method}'`);
    const out = await fn(params, options);
    if (isStream(out)) {
      streams.set(id, { stream: out, iterator: out[Symbol.asyncIterator]() });
      frame({ type: 'opened', id });
    } else {
      frame({ type: 'result', id, result: out });
    }
  } catch (error) {
    frame({ type: 'error', id, error: toWorkerManagerError(error).toJSON() });
  } finally {
    calls.delete(id);
  }
}

function isStream(value: unknown): value is SandboxStream {
  return typeof value === 'object' && value !== null && typeof (value as { cancel?: unknown }).cancel === 'function' && Symbol.asyncIterator in value;
}

async function pull(id: number): Promise<void> {
  const open = streams.get(id);
  if (open === undefined) return;
  try {
    const next = await open.iterator.next();
    if (next.done === true) {
      streams.delete(id);
      frame({ type: 'end', id });
    } else {
      frame({ type: 'item', id, value: next.value });
    }
  } catch (error) {
    streams.delete(id);
    frame({ type: 'error', id, error: toWorkerManagerError(error).toJSON() });
  }
}

async function stop(timeoutMs: number): Promise<void> {
  await sandbox?.stop({ timeoutMs }).catch(() => {});
  frame({ type: 'stopped' });
  setImmediate(() => process.exit(0));
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    return;
  }
  if (!hostFrame.Check(message)) return;
  switch (message.type) {
    case 'init':
      void init(message);
      break;
    case 'call':
      void call(message.id, message.method, message.params, message.timeoutMs, message.correlationId);
      break;
    case 'abort':
      calls.get(message.id)?.abort();
      break;
    case 'pull':
      void pull(message.id);
      break;
    case 'cancel': {
      const open = streams.get(message.id);
      streams.delete(message.id);
      open?.stream.cancel();
      break;
    }
    case 'stop':
      void stop(message.timeoutMs);
      break;
  }
});
// The host is gone (its end of the pipe closed): nothing is left to serve.
lines.on('close', () => void stop(1_000));
