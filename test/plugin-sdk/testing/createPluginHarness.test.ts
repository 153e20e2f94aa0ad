import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  definePlugin,
  isWorkerManagerError,
  Type,
  WorkerManagerError,
  type CredentialHandlers,
  type LogChunk,
  type PluginContext,
  type ProviderHandlers,
  type WorkerEvent,
} from '@worker-manager/plugin-sdk';
import { createPluginHarness } from '@worker-manager/plugin-sdk/testing';
import { waitFor } from '../../helpers/waitFor.ts';

const Config = Type.Object(
  { size: Type.Optional(Type.Integer({ minimum: 1, default: 4 })), name: Type.String() },
  { additionalProperties: false },
);

const worker = (workerId: string) => ({ workerId, state: { phase: 'Running' as const }, labels: {}, createdAt: '2026-01-01T00:00:00.000Z' });

/** A tiny provider whose handlers the test overrides; what it received is recorded in `seen`. */
function provider(capabilities: Record<string, string>, handlers: Partial<ProviderHandlers> = {}) {
  const seen: { ctx?: PluginContext<unknown>; closed: boolean } = { closed: false };
  const definition = definePlugin({
    id: 'fixture',
    version: '1.0.0',
    kind: 'provider',
    hostApi: '^2.0.0',
    capabilities: { 'worker.lifecycle': '2.0.0', ...capabilities },
    configSchema: Config,
    setup(ctx) {
      seen.ctx = ctx as PluginContext<unknown>;
      return {
        createWorker: async (p) => worker(p.workerId),
        terminateWorker: async (p) => ({ workerId: p.workerId, state: { phase: 'Terminated' }, alreadyGone: false }),
        getWorkerStatus: async () => ({ phase: 'Running' }),
        listWorkers: async () => [],
        close: () => {
          seen.closed = true;
        },
        ...handlers,
      };
    },
  });
  return { definition, seen };
}

async function rejectsWith(promise: Promise<unknown>, code: string, check?: (e: WorkerManagerError) => void): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isWorkerManagerError(e), `not a WorkerManagerError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    check?.(e);
    return true;
  });
}

describe('createPluginHarness', () => {
  it('validates the config against configSchema after applying defaults, and names every failing path', async () => {
    const { definition, seen } = provider({});
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    assert.deepEqual(h.config, { size: 4, name: 'x' });
    assert.deepEqual(seen.ctx?.config, { size: 4, name: 'x' });
    await h.close();
    await rejectsWith(createPluginHarness(definition, { config: { size: 0, extra: true } }), 'WM_ERR_CONFIGURATION', (e) => {
      const paths = (e.details?.['issues'] as Array<{ instancePath: string }>).map((i) => i.instancePath);
      assert.ok(paths.includes('/size'), `paths: ${paths.join(',')}`);
      assert.ok(paths.some((p) => p === '' || p === '/extra'), 'unknown key reported');
      assert.match(e.message, /\/size/);
      assert.equal(e.details?.['plugin'], 'fixture');
    });
  });

  it('gives setup a real context: owner labels, state dir, logger and emit; close calls close() and aborts the signal', async () => {
    const { definition, seen } = provider({ 'worker.events': '1.0.0' });
    const h = await createPluginHarness(definition, { config: { name: 'x' }, hostId: 'h1', instance: 'i1' });
    const ctx = seen.ctx!;
    assert.deepEqual(ctx.owner, { 'worker-manager/host': 'h1', 'worker-manager/instance': 'i1' });
    assert.equal(ctx.stateDir, h.stateDir);
    await access(h.stateDir);
    ctx.logger.warn('careful', { n: 1 });
    assert.deepEqual(h.logs, [{ level: 'warn', message: 'careful', fields: { n: 1 } }]);
    const good: WorkerEvent = { type: 'WorkerCreated', workerId: 'w1', timestamp: '2026-01-01T00:00:00.000Z' };
    ctx.emit(good);
    ctx.emit({ type: 'WorkerCreated', workerId: 'BAD ID', timestamp: 'x' } as WorkerEvent);
    assert.deepEqual(h.events, [good]);
    assert.equal(h.rejectedEvents.length, 1);
    assert.equal(ctx.signal.aborted, false);
    await h.close();
    await h.close();
    assert.equal(seen.closed, true);
    assert.equal(ctx.signal.aborted, true);
    await assert.rejects(access(h.stateDir), { code: 'ENOENT' }, 'a temp state dir made by the harness is removed');
    await rejectsWith(h.proxy.getWorkerStatus({ workerId: 'w1' }), 'WM_ERR_INTERNAL');
  });

  it('refuses operations whose capability is not declared (or declared at an incompatible version) with WM_ERR_COMPATIBILITY', async () => {
    let called = false;
    const { definition } = provider({ 'worker.exec': '2.0.0', 'worker.logs': '1.0.0' }, {
      executeCommand: async () => {
        called = true;
        return { exitCode: 0, stdout: '', stderr: '', durationMs: 0, timedOut: false };
      },
      getLogs: async () => (async function* () {})(),
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    assert.deepEqual(h.capabilities, { 'worker.lifecycle': '2.0.0', 'worker.logs': '1.0.0' });
    await rejectsWith(h.proxy.executeCommand({ workerId: 'w1', command: ['true'] }), 'WM_ERR_COMPATIBILITY', (e) => assert.equal(e.details?.['capability'], 'worker.exec'));
    assert.equal(called, false, 'the handler is never reached');
    await rejectsWith(h.proxy.pauseWorker({ workerId: 'w1' }), 'WM_ERR_COMPATIBILITY');
    await rejectsWith(h.proxy.getLogs({ workerId: 'w1', options: { follow: true } }), 'WM_ERR_COMPATIBILITY', (e) => assert.equal(e.details?.['capability'], 'worker.logs.follow'));
    const plain = await h.proxy.getLogs({ workerId: 'w1' });
    for await (const _ of plain) assert.fail('no chunks expected');
    await rejectsWith(h.proxy.createWorker({ workerId: 'w1', spec: { image: 'busybox', resources: { memoryMiB: 64 } } }), 'WM_ERR_COMPATIBILITY', (e) =>
      assert.deepEqual(e.details?.['missing'], ['worker.image', 'worker.resources.memory']),
    );
    await h.close();
  });

  it('a declared capability without a handler is WM_ERR_INTERNAL', async () => {
    const { definition } = provider({ 'worker.pause': '1.0.0' });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    await rejectsWith(h.proxy.pauseWorker({ workerId: 'w1' }), 'WM_ERR_INTERNAL', (e) => assert.match(e.message, /pauseWorker/));
    await h.close();
  });

  it('validates params: WM_ERR_VALIDATION with the instancePath, before the handler runs', async () => {
    let calls = 0;
    const { definition } = provider({}, {
      getWorkerStatus: async () => {
        calls++;
        return { phase: 'Running' };
      },
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    await rejectsWith(h.proxy.getWorkerStatus({ workerId: 'Not Valid' }), 'WM_ERR_VALIDATION', (e) => {
      assert.equal(e.details?.['instancePath'], '/workerId');
      assert.equal(e.details?.['operation'], 'getWorkerStatus');
    });
    await rejectsWith(h.proxy.createWorker({ workerId: 'w1', spec: { command: 'ls' } } as never), 'WM_ERR_VALIDATION', (e) => assert.equal(e.details?.['instancePath'], '/spec/command'));
    assert.equal(calls, 0);
    await h.close();
  });

  it('an invalid result is WM_ERR_INTERNAL naming the operation; results and params are copies', async () => {
    const kept: Array<{ workerId: string }> = [];
    const { definition } = provider({}, {
      getWorkerStatus: async () => ({ phase: 'Sleeping' }) as never,
      listWorkers: async () => [worker('w1')],
      terminateWorker: async (p) => {
        kept.push(p);
        return { workerId: p.workerId, state: { phase: 'Terminated' }, alreadyGone: false };
      },
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    await rejectsWith(h.proxy.getWorkerStatus({ workerId: 'w1' }), 'WM_ERR_INTERNAL', (e) => {
      assert.match(e.message, /getWorkerStatus/);
      assert.equal(e.details?.['operation'], 'getWorkerStatus');
    });
    const params = { workerId: 'w2' };
    await h.proxy.terminateWorker(params);
    assert.notEqual(kept[0], params, 'the plugin gets a clone, as across a thread');
    assert.deepEqual(await h.proxy.listWorkers({}), [worker('w1')]);
    await h.close();
  });

  it('errors: WorkerManagerErrors keep code and details, anything else becomes WM_ERR_INTERNAL', async () => {
    const { definition } = provider({}, {
      getWorkerStatus: async () => {
        throw new WorkerManagerError('WM_ERR_NOT_FOUND', 'no such worker', { details: { workerId: 'w1' } });
      },
      listWorkers: async () => {
        throw new RangeError('index out of range');
      },
      createWorker: () => {
        throw 'a string';
      },
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    await rejectsWith(h.proxy.getWorkerStatus({ workerId: 'w1' }), 'WM_ERR_NOT_FOUND', (e) => assert.deepEqual(e.details, { workerId: 'w1' }));
    await rejectsWith(h.proxy.listWorkers({}), 'WM_ERR_INTERNAL', (e) => assert.equal(e.message, 'index out of range'));
    await rejectsWith(h.proxy.createWorker({ workerId: 'w1', spec: { command: ['x'] } }), 'WM_ERR_INTERNAL');
    await h.close();
  });

  it('timeoutMs and an aborted signal end a call with WM_ERR_TIMEOUT and abort the handler signal', async () => {
    let handlerSignal: AbortSignal | undefined;
    const { definition } = provider({}, {
      getWorkerStatus: (_p, call) => {
        handlerSignal = call.signal;
        return new Promise(() => {});
      },
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    await rejectsWith(h.proxy.getWorkerStatus({ workerId: 'w1' }, { timeoutMs: 50 }), 'WM_ERR_TIMEOUT');
    assert.equal(handlerSignal?.aborted, true);
    const controller = new AbortController();
    const pending = h.proxy.getWorkerStatus({ workerId: 'w1' }, { signal: controller.signal });
    controller.abort();
    await rejectsWith(pending, 'WM_ERR_TIMEOUT');
    await h.close();
  });

  it('streams: items validated and cloned, an invalid item is WM_ERR_INTERNAL, cancel ends a waiting stream', async () => {
    const chunk = (seq: number): LogChunk => ({ stream: 'stdout', data: `line ${seq}\n`, timestamp: '2026-01-01T00:00:00.000Z', seq });
    let sawAbort = false;
    const { definition } = provider({ 'worker.logs': '1.0.0', 'worker.logs.follow': '1.0.0' }, {
      getLogs: async (p, call) =>
        (async function* () {
          if (p.workerId === 'bad') {
            yield chunk(0);
            yield { ...chunk(1), seq: -1 };
            return;
          }
          yield chunk(0);
          await new Promise<void>((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
          sawAbort = true;
        })(),
    });
    const h = await createPluginHarness(definition, { config: { name: 'x' } });
    const bad = await h.proxy.getLogs({ workerId: 'bad' });
    const got: LogChunk[] = [];
    await rejectsWith(
      (async () => {
        for await (const c of bad) got.push(c);
      })(),
      'WM_ERR_INTERNAL',
      (e) => assert.match(e.message, /getLogs/),
    );
    assert.deepEqual(got, [chunk(0)]);

    const waiting = await h.proxy.getLogs({ workerId: 'w1', options: { follow: true } });
    const it = waiting[Symbol.asyncIterator]();
    assert.deepEqual(await it.next(), { done: false, value: chunk(0) });
    const pending = it.next();
    waiting.cancel();
    assert.deepEqual(await pending, { done: true, value: undefined });
    await waitFor(() => sawAbort, 'the handler to see its signal abort');
    await h.close();
  });

  it('runs credential plugins behind the credentials contract', async () => {
    const definition = definePlugin({
      id: 'creds',
      version: '1.0.0',
      kind: 'credentials',
      hostApi: '^2.0.0',
      capabilities: { 'secret.read': '1.0.0' },
      configSchema: Type.Object({}),
      setup: (): CredentialHandlers => ({
        getSecret: async (p) => ({ name: p.name, version: '1', value: 's3cr3t' }),
        listVersions: async () => [],
        describe: async (p) => ({ name: p.name, versions: 0 }),
      }),
    });
    const h = await createPluginHarness(definition, { config: {} });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db' }), { name: 'db', version: '1', value: 's3cr3t' });
    await rejectsWith(h.proxy.putSecret({ name: 'db', value: 'x' }), 'WM_ERR_COMPATIBILITY');
    await h.close();
  });
});
