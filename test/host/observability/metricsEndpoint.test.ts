import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { parseExposition, valueOf, type Sample } from './exposition.ts';

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';

describe('GET /metrics of a running host', () => {
  let t: TestHost;
  let url: string;

  before(async () => {
    t = await startTestHost(`
host: { id: metrics-test, stateDir: \${DIR}/state }
api: { enabled: true, port: 0 }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH}" }
  - name: exiter
    package: ${repoRoot}test/fixtures/plugins/hostile-exit
    limits: { restart: { maxRestarts: 1, windowMs: 60000, backoffMs: 10, maxBackoffMs: 20 } }
instances:
  - { name: local, plugin: process, default: true, config: { maxWorkers: 1, pollIntervalMs: 50 } }
  - { name: bad, plugin: exiter }
`);
    url = `${t.host.apiUrl ?? assert.fail('the API is not listening')}/metrics`;
  });
  after(() => t?.stop());

  async function scrape(): Promise<{ samples: Sample[]; text: string }> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    return { samples: parseExposition(text), text };
  }

  it('serves the catalog, plugin state, outbox depth and process metrics before anything happened', async () => {
    const { samples, text } = await scrape();
    for (const name of ['worker_create_latency_ms', 'worker_terminate_latency_ms', 'health_check_failures_total', 'rotation_success_total', 'rotation_latency_ms', 'provider_operations_errors_total', 'event_publish_latency_ms', 'secrets_mounts_total', 'plugin_restarts_total', 'plugin_quarantined', 'plugin_call_latency_ms', 'event_outbox_depth']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is declared`);
    }
    assert.equal(valueOf(samples, 'plugin_up', { plugin_instance: 'local', plugin: 'process' }), 1);
    assert.equal(valueOf(samples, 'plugin_quarantined', { plugin_instance: 'bad', plugin: 'hostile-exit' }), 0);
    assert.equal(valueOf(samples, 'event_outbox_depth'), 0);
    assert.equal(valueOf(samples, 'event_bus_connected'), 1);
    assert.ok(valueOf(samples, 'process_resident_memory_bytes') > 0);
    // Every phase of a provider instance is a series, 0 while it has no worker in it.
    const workers = samples.filter((x) => x.name === 'wm_workers' && x.labels['provider'] === 'local');
    assert.deepEqual(workers.map((x) => [x.labels['state'], x.value]).sort(), ['Creating', 'Degraded', 'Failed', 'Paused', 'Pending', 'Recovering', 'Running', 'Starting', 'Stopping', 'Terminated', 'Unknown'].map((p) => [p, 0]));
  });

  it('moves the create, terminate, error and failure series as process workers are created, terminated and fail', async () => {
    const before = (await scrape()).samples;
    const running = await t.host.workers.createWorker({ workerId: 'w-metrics-run', spec: { command: ['sleep', '600'] } });
    // maxWorkers is 1: the provider itself refuses the second worker.
    const refused = await t.host.workers.createWorker({ workerId: 'w-metrics-refused', spec: { command: ['sleep', '600'] } }).then(
      () => assert.fail('the second create was accepted'),
      (error: WorkerManagerError) => error,
    );
    assert.equal(refused.code, 'WM_ERR_RESOURCE_EXHAUSTED');
    await t.host.workers.terminateWorker(running.worker.workerId, { gracePeriodMs: 1_000 });
    await t.host.workers.createWorker({ workerId: 'w-metrics-fails', spec: { command: ['sh', '-c', 'exit 3'] } });
    await waitFor(() => t.events.find((e) => e.busSubject === 'ci.worker.failed' && e.subject === 'w-metrics-fails'), 'the worker to fail');

    const { samples: now, text } = await waitFor(async () => {
      const s = await scrape();
      return valueOf(s.samples, 'worker_failures_total', { provider: 'local' }) > valueOf(before, 'worker_failures_total', { provider: 'local' }) ? s : undefined;
    }, 'worker_failures_total to move');
    const moved = (name: string, labels: Record<string, string>): number => valueOf(now, name, labels) - valueOf(before, name, labels);

    assert.equal(moved('worker_failures_total', { provider: 'local', reason: 'ExitCode' }), 1);
    assert.equal(moved('plugin_call_latency_ms_count', { plugin_instance: 'local', plugin: 'process', method: 'createWorker', result: 'ok' }), 2);
    assert.equal(moved('plugin_call_errors_total', { plugin_instance: 'local', method: 'createWorker', error_code: 'WM_ERR_RESOURCE_EXHAUSTED' }), 1);
    assert.ok(moved('event_publish_latency_ms_count', { subject: 'ci.worker.created', status: 'ok' }) >= 2);
    assert.ok(moved('event_publish_latency_ms_count', { subject: 'ci.worker.failed', status: 'ok' }) >= 1);
    // Bounded labels: no worker id anywhere in the exposition.
    assert.doesNotMatch(text, /w-metrics-/);
    // From the operation records of the worker service.
    assert.equal(moved('worker_create_latency_ms_count', { provider: 'local' }), 2);
    assert.ok(moved('worker_create_latency_ms_sum', { provider: 'local' }) > 0);
    assert.equal(moved('worker_terminate_latency_ms_count', { provider: 'local' }), 1);
    assert.equal(moved('provider_operations_errors_total', { provider: 'local', operation: 'createWorker', error_category: 'ResourceLimits', error_code: 'WM_ERR_RESOURCE_EXHAUSTED' }), 1);
    // The ledger's records by state: the terminated one, the refused and the failed ones.
    assert.deepEqual(['Running', 'Terminated', 'Failed'].map((state) => valueOf(now, 'wm_workers', { state, provider: 'local' })), [0, 1, 2]);
  });

  it('counts the crashes and restart of a hostile plugin, then shows it quarantined', async () => {
    const crash = (): Promise<string> => t.host.registry.provider('bad').getWorkerStatus({ workerId: 'exit' }).then(
      () => 'answered',
      (error: WorkerManagerError) => error.code,
    );
    assert.equal(await crash(), 'HOST_ERR_PLUGIN_CRASHED');
    await waitFor(() => t.host.registry.instance('bad').state === 'running', 'the first restart', 60_000);
    const afterRestart = (await scrape()).samples;
    assert.equal(valueOf(afterRestart, 'plugin_restarts_total', { plugin_instance: 'bad', plugin: 'hostile-exit' }), 1);
    assert.equal(valueOf(afterRestart, 'plugin_crashes_total', { plugin_instance: 'bad', plugin: 'hostile-exit', reason: 'crash' }), 1);
    assert.equal(valueOf(afterRestart, 'plugin_quarantined', { plugin_instance: 'bad' }), 0);

    assert.equal(await crash(), 'HOST_ERR_PLUGIN_CRASHED');
    await waitFor(() => t.host.registry.instance('bad').state === 'quarantined', 'quarantine', 60_000);
    const { samples } = await scrape();
    assert.equal(valueOf(samples, 'plugin_crashes_total', { plugin_instance: 'bad', reason: 'crash' }), 2);
    assert.equal(valueOf(samples, 'plugin_restarts_total', { plugin_instance: 'bad' }), 1);
    assert.equal(valueOf(samples, 'plugin_quarantined', { plugin_instance: 'bad', plugin: 'hostile-exit' }), 1);
    assert.equal(valueOf(samples, 'plugin_up', { plugin_instance: 'bad' }), 0);
    assert.equal(valueOf(samples, 'plugin_call_errors_total', { plugin_instance: 'bad', method: 'getWorkerStatus', error_code: 'HOST_ERR_PLUGIN_CRASHED' }), 2);
    assert.ok(valueOf(samples, 'event_publish_latency_ms_count', { subject: 'ci.plugin.quarantined', status: 'ok' }) >= 1);
    // The healthy instance is unaffected.
    assert.equal(valueOf(samples, 'plugin_up', { plugin_instance: 'local' }), 1);
  });

  it('is not served by an API built without metrics', async () => {
    const app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
    try {
      assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
      const withMetrics = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, metrics: t.host.metrics });
      try {
        assert.equal((await withMetrics.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
      } finally {
        await withMetrics.close();
      }
    } finally {
      await app.close();
    }
  });
});
