import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WorkerManagerError, type LogChunk } from '@worker-manager/plugin-sdk';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { waitFor, within } from '../helpers/waitFor.ts';

const isCode = (code: string) => (err: unknown) => err instanceof WorkerManagerError && err.code === code;

describe('Host with the process provider', () => {
  let t: TestHost;
  before(async () => {
    t = await startTestHost(`
host: { id: it-host, stateDir: \${DIR}/state }
bus: { subjectPrefix: acme.ci }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process, default: true }
  - { name: b, plugin: process, config: { maxWorkers: 1 } }
`);
  });
  after(() => t.stop());

  it('starts two instances of one plugin and reports their negotiated capabilities', () => {
    assert.deepEqual(t.report.map((r) => [r.instance, r.state]), [['a', 'running'], ['b', 'running']]);
    const a = t.report[0];
    assert.equal(a?.version, '0.1.0');
    assert.equal(a?.capabilities['worker.lifecycle'], '2.0.0');
    assert.equal(a?.capabilities['worker.image'], undefined);
  });

  it('creates a worker on the default instance, idempotently by key, and publishes CloudEvents under the prefix', async () => {
    const spec = { command: ['sh', '-c', 'echo ready; exec sleep 600'] };
    const [one, two] = await Promise.all([
      t.host.workers.createWorker({ spec, idempotencyKey: 'key-1', correlationId: 'corr-1' }),
      t.host.workers.createWorker({ spec, idempotencyKey: 'key-1', correlationId: 'corr-1' }),
    ]);
    assert.equal(one.instance, 'a');
    assert.equal(one.worker.workerId, two.worker.workerId);
    const listed = await t.host.workers.listWorkers({ provider: 'a' });
    assert.equal(listed.filter((w) => w.worker.workerId === one.worker.workerId).length, 1);

    const created = await waitFor(() => t.events.find((e) => e.busSubject === 'acme.ci.worker.created' && e.subject === one.worker.workerId), 'worker.created event');
    assert.equal(created.specversion, '1.0');
    assert.equal(created.source, 'it-host');
    assert.equal(created.type, 'dev.worker-manager.worker.created');
    assert.equal((created.data as { instance: string }).instance, 'a');
    assert.equal(t.events.filter((e) => e.busSubject === 'acme.ci.worker.created' && e.subject === one.worker.workerId).length, 1);

    const term = await t.host.workers.terminateWorker(one.worker.workerId);
    assert.equal(term.instance, 'a');
    await waitFor(() => t.events.find((e) => (e.busSubject === 'acme.ci.worker.terminated' || e.busSubject === 'acme.ci.worker.failed') && e.subject === one.worker.workerId), 'terminal event');
    // The record of a live worker that was terminated stays (ended) for the retention period ...
    assert.ok(['Terminated', 'Failed'].includes((await t.host.workers.view(one.worker.workerId))?.phase ?? 'none'), 'the ended record is kept');
    const again = await t.host.workers.terminateWorker(one.worker.workerId);
    assert.equal(again.alreadyGone, true);
    // ... and terminating it once it has ended purges that record at once.
    assert.equal(again.instance, 'a');
    assert.equal(await t.host.workers.view(one.worker.workerId), undefined, 'the ended record was purged');
  });

  it('routes operations by worker to the instance that owns it', async () => {
    const { worker } = await t.host.workers.createWorker({ provider: 'b', spec: { command: ['sh', '-c', 'echo on-b; exec sleep 600'] } });
    try {
      assert.equal((await t.host.workers.getStatus(worker.workerId)).instance, 'b');
      // The command's own deadline: generous, since a fork on a loaded machine can take seconds.
      const result = await t.host.workers.executeCommand(worker.workerId, ['sh', '-c', 'echo $WM_WORKER_ID'], 60_000);
      assert.equal(result.exitCode, 0);
      assert.equal(result.stdout.trim(), worker.workerId);
      const logs = await t.host.workers.getLogs(worker.workerId, { follow: false });
      const chunks: LogChunk[] = [];
      for await (const c of logs) chunks.push(c);
      assert.match(chunks.map((c) => c.data).join(''), /on-b/);
      // Instance b allows one worker; the provider's own limit surfaces as a typed, retryable error.
      await assert.rejects(t.host.workers.createWorker({ provider: 'b', spec: { command: ['sleep', '600'] } }), isCode('WM_ERR_RESOURCE_EXHAUSTED'));
    } finally {
      await t.host.workers.terminateWorker(worker.workerId);
    }
  });

  it('refuses a spec that needs capabilities the instance did not negotiate, before calling the plugin', async () => {
    await assert.rejects(t.host.workers.createWorker({ spec: { image: 'busybox', command: ['true'] } }), (err: unknown) => {
      assert.ok(isCode('WM_ERR_COMPATIBILITY')(err));
      assert.deepEqual((err as WorkerManagerError).details?.['missing'], ['worker.image']);
      return true;
    });
    await assert.rejects(t.host.workers.createWorker({ spec: { command: ['true'], ports: [{ containerPort: 80 }] } }), isCode('WM_ERR_COMPATIBILITY'));
  });

  it('refuses secret refs while no credential instance exists, rather than starting a worker without them', async () => {
    await assert.rejects(t.host.workers.createWorker({ spec: { command: ['true'], secretRefs: [{ name: 'db', mount: 'env' }] } }), isCode('WM_ERR_CONFIGURATION'));
  });

  it('answers unknown workers and instances with their codes', async () => {
    await assert.rejects(t.host.workers.getStatus('w-nope'), isCode('WM_ERR_NOT_FOUND'));
    await assert.rejects(t.host.workers.createWorker({ provider: 'zzz', spec: { command: ['true'] } }), isCode('HOST_ERR_INSTANCE_NOT_FOUND'));
    await assert.rejects(t.host.workers.createWorker({ spec: { command: ['true'], args: [] }, workerId: 'Bad_Id' }), isCode('WM_ERR_VALIDATION'));
  });

  it('start() and stop() are safe to call twice', async () => {
    assert.deepEqual(await t.host.start(), t.report);
  });
});

/** A host with two instances of the process provider, a and b, neither the default. */
const twoInstances = (id: string): string => `
host: { id: ${id}, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process }
  - { name: b, plugin: process }
`;

// Each test boots its own host in its own folder: they run side by side.
describe('Host restart', { concurrency: true }, () => {
  it('finds a worker its route table does not know by asking the providers (regression: NOT_FOUND after a failed adoption listing)', async () => {
    const t = await startTestHost(twoInstances('it-route'));
    try {
      // Created behind the service's back, straight on instance b: the service has never seen it.
      await t.host.registry.provider('b').createWorker({ workerId: 'w-behind', spec: { command: ['sleep', '600'] } });
      const status = await t.host.workers.getStatus('w-behind');
      assert.equal(status.instance, 'b');
      assert.equal(status.state.phase, 'Running');
      const gone = await t.host.workers.terminateWorker('w-behind');
      assert.equal(gone.instance, 'b');
      assert.equal(gone.alreadyGone, false);
    } finally {
      await t.stop();
    }
  });

  it("reads a worker's owner from the service's table, and on a miss lists only the instance that has it", async () => {
    const t = await startTestHost(twoInstances('it-describe'));
    // Authorization asks this on every worker request: counting listWorkers calls shows whether it walked every provider.
    const listings = async (instance: string): Promise<number> => {
      const metric = (await t.host.metrics.registry.getSingleMetric('plugin_call_latency_ms')?.get())?.values ?? [];
      return metric.filter((v) => (v as { metricName?: string }).metricName === 'plugin_call_latency_ms_count' && v.labels['method'] === 'listWorkers' && v.labels['plugin_instance'] === instance).reduce((n, v) => n + v.value, 0);
    };
    try {
      const created = await t.host.workers.createWorker({ provider: 'a', spec: { command: ['sleep', '600'] }, tenant: 'team-x', owner: 'alice' });
      const [a0, b0] = [await listings('a'), await listings('b')];
      const seen = await t.host.workers.describeWorker(created.worker.workerId);
      assert.equal(seen?.instance, 'a');
      assert.equal(seen?.labels['wm.tenant'], 'team-x');
      assert.equal(seen?.labels['wm.owner'], 'alice');
      assert.deepEqual([await listings('a'), await listings('b')], [a0, b0]);

      await t.host.registry.provider('b').createWorker({ workerId: 'w-unseen', spec: { command: ['sleep', '600'], labels: { 'wm.tenant': 'team-y' } } });
      const unseen = await t.host.workers.describeWorker('w-unseen');
      assert.equal(unseen?.instance, 'b');
      assert.equal(unseen?.labels['wm.tenant'], 'team-y');
      assert.deepEqual([await listings('a'), await listings('b')], [a0, b0 + 1]);

      assert.equal(await t.host.workers.describeWorker('w-nobody'), undefined);
      await t.host.workers.terminateWorker(created.worker.workerId);
      await t.host.workers.terminateWorker('w-unseen');
    } finally {
      await t.stop();
    }
  });

  it('adopts the workers a previous host left running', async () => {
    const yaml = (dir: string): string => `
host: { id: it-restart, stateDir: ${dir}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process }
`;
    const first = await startTestHost(yaml('${DIR}'));
    const { worker } = await first.host.workers.createWorker({ spec: { command: ['sleep', '600'] } });
    await first.host.stop();
    // Same state dir, new host: the worker is still there and routable without any help from the first host.
    const second = await startTestHost(yaml(first.dir));
    try {
      const status = await second.host.workers.getStatus(worker.workerId);
      assert.equal(status.instance, 'a');
      assert.equal(status.state.phase, 'Running');
      await second.host.workers.terminateWorker(worker.workerId);
      assert.equal((await second.host.workers.getStatus(worker.workerId)).state.phase !== 'Running', true);
    } finally {
      await second.stop();
      await first.stop();
    }
  });
});

describe('Host with a crashing plugin beside a healthy one', () => {
  it('publishes plugin.crashed, then plugin.quarantined past the budget, and keeps serving the healthy instance', async () => {
    const t = await startTestHost(`
host: { id: it-hostile, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
  - name: exiter
    package: ${repoRoot}test/fixtures/plugins/hostile-exit
    limits: { restart: { maxRestarts: 1, windowMs: 60000, backoffMs: 10, maxBackoffMs: 20 } }
instances:
  - { name: local, plugin: process, default: true }
  - { name: bad, plugin: exiter }
`);
    try {
      const bad = t.host.registry.provider('bad');
      const crash = async (): Promise<string> => {
        try {
          await bad.getWorkerStatus({ workerId: 'exit' });
          return 'answered';
        } catch (error) {
          return (error as WorkerManagerError).code;
        }
      };
      assert.equal(await crash(), 'HOST_ERR_PLUGIN_CRASHED');
      await waitFor(() => (t.host.registry.instance('bad').state === 'running' ? true : undefined), 'first restart');
      assert.equal(await crash(), 'HOST_ERR_PLUGIN_CRASHED');
      await waitFor(() => t.events.find((e) => e.busSubject === 'ci.plugin.quarantined'), 'plugin.quarantined event');
      const crashed = t.events.filter((e) => e.busSubject === 'ci.plugin.crashed');
      assert.equal(crashed.length, 2);
      assert.deepEqual(
        { instance: (crashed[0]?.data as Record<string, unknown>)['instance'], plugin: (crashed[0]?.data as Record<string, unknown>)['plugin'] },
        { instance: 'bad', plugin: 'hostile-exit' },
      );
      assert.equal(t.host.registry.report().find((r) => r.instance === 'bad')?.state, 'quarantined');
      assert.throws(() => t.host.registry.provider('bad'), { code: 'HOST_ERR_INSTANCE_UNAVAILABLE' });
      const { worker } = await t.host.workers.createWorker({ spec: { command: ['sleep', '600'] } });
      assert.equal((await t.host.workers.getStatus(worker.workerId)).state.phase, 'Running');
      await t.host.workers.terminateWorker(worker.workerId);
    } finally {
      await t.stop();
    }
  });
});

describe('Host boot abort', () => {
  it('rejects start() with HOST_ERR_BOOT_ABORTED instead of hanging (regression: the failed start waited for itself)', async () => {
    // The regression hung for ever; a budget sized for a loaded host start tells that apart from a slow rejection.
    await assert.rejects(
      within(startTestHost(`
host: { id: it-abort, stateDir: \${DIR}/state }
plugins:
  - name: old
    package: ${repoRoot}test/fixtures/plugins/negotiation-host-api
    onBootFailure: abort
instances:
  - { name: old, plugin: old }
`), 'start() to reject', 60_000),
      (err: unknown) => err instanceof WorkerManagerError && err.code === 'HOST_ERR_BOOT_ABORTED',
    );
  });
});
