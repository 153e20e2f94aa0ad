import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { createEvent } from '../../../host/src/bus/createEvent.ts';
import type { EventEnvelope } from '../../../host/src/bus/EventEnvelope.ts';
import { MemoryEventBus } from '../../../host/src/bus/MemoryEventBus.ts';
import { subjectsFor } from '../../../host/src/bus/subjects.ts';
import { createMetrics } from '../../../host/src/observability/metrics.ts';
import { LabelBudget, reasonFamily } from '../../../host/src/observability/metricsLabels.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { parseExposition, valueOf, type Sample } from './exposition.ts';

const subjects = subjectsFor('ci');
const ids = { id: 'process', version: '1.0.0' };

async function scrape(metrics: { render(): Promise<string> }): Promise<Sample[]> {
  return parseExposition(await metrics.render());
}

describe('createMetrics', () => {
  it('uses a registry of its own, so two hosts in one process do not collide, and leaves the global one alone', async () => {
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    const a = createMetrics();
    const b = createMetrics();
    a.observer({ op: 'createWorker', instance: 'local', result: 'ok', latencyMs: 12 });
    assert.equal(valueOf(await scrape(a), 'worker_create_latency_ms_count', { provider: 'local' }), 1);
    assert.equal(valueOf(await scrape(b), 'worker_create_latency_ms_count', { provider: 'local' }), 0);
    assert.equal((await globalRegistry.getMetricsAsJSON()).length, before);
    assert.match(a.contentType, /^text\/plain; version=0\.0\.4/);
  });

  it('exports process metrics by default and not when asked', async () => {
    // Present, not positive: prom-client reports CPU used since the collector started, which can round to 0 right away.
    assert.ok((await scrape(createMetrics())).some((x) => x.name === 'process_cpu_user_seconds_total'));
    assert.equal((await scrape(createMetrics({ processMetrics: false }))).some((s) => s.name.startsWith('process_') || s.name.startsWith('nodejs_')), false);
  });

  it('turns operation records into the create, terminate and error series', async () => {
    const m = createMetrics({ processMetrics: false });
    m.observer({ op: 'createWorker', instance: 'local', plugin: 'process', workerId: 'w-1', result: 'ok', latencyMs: 40 });
    m.observer({ op: 'createWorker', instance: 'local', workerId: 'w-2', result: 'error', category: 'ResourceLimits', code: 'WM_ERR_RESOURCE_EXHAUSTED', latencyMs: 3 });
    m.observer({ op: 'terminateWorker', instance: 'local', workerId: 'w-1', result: 'ok', latencyMs: 7 });
    m.observer({ op: 'createWorker', result: 'error', category: 'ClientValidation', code: 'HOST_ERR_INSTANCE_NOT_FOUND', latencyMs: 1 });
    const s = await scrape(m);
    // Failed creates are errors, not create latency: the histogram is "time until Running".
    assert.equal(valueOf(s, 'worker_create_latency_ms_count', { provider: 'local' }), 1);
    assert.equal(valueOf(s, 'worker_create_latency_ms_sum', { provider: 'local' }), 40);
    assert.equal(valueOf(s, 'worker_create_latency_ms_bucket', { provider: 'local', le: '50' }), 1);
    assert.equal(valueOf(s, 'worker_create_latency_ms_bucket', { provider: 'local', le: '25' }), 0);
    assert.equal(valueOf(s, 'worker_terminate_latency_ms_count', { provider: 'local' }), 1);
    assert.equal(valueOf(s, 'provider_operations_errors_total', { provider: 'local', operation: 'createWorker', error_category: 'ResourceLimits', error_code: 'WM_ERR_RESOURCE_EXHAUSTED' }), 1);
    // A failure before any provider was chosen still counts, under provider "none".
    assert.equal(valueOf(s, 'provider_operations_errors_total', { provider: 'none', error_code: 'HOST_ERR_INSTANCE_NOT_FOUND' }), 1);
    assert.equal(valueOf(s, 'provider_operations_total', { provider: 'local', operation: 'createWorker', result: 'ok' }), 1);
    assert.equal(valueOf(s, 'provider_operations_total', { provider: 'local', operation: 'createWorker', result: 'error' }), 1);
    // Worker ids are never labels.
    assert.equal(s.some((x) => Object.values(x.labels).some((v) => v.startsWith('w-'))), false);
  });

  it('counts completed rotations by credentials instance and trigger, and times them, without secret names by default', async () => {
    const m = createMetrics({ processMetrics: false });
    m.observer({ op: 'rotateSecret', instance: 'vault', secret: 'db-password', trigger: 'manual', result: 'ok', latencyMs: 300 });
    m.observer({ op: 'rotateSecret', instance: 'vault', secret: 'api-key', trigger: 'manual', result: 'ok', latencyMs: 1_500 });
    const text = await m.render();
    const s = parseExposition(text);
    assert.equal(valueOf(s, 'rotation_success_total', { provider: 'vault', strategy: 'manual' }), 2);
    assert.equal(valueOf(s, 'rotation_latency_ms_count', { provider: 'vault' }), 2);
    assert.doesNotMatch(text, /secret_name|db-password|api-key/);
  });

  it('counts completed rotations by secret, provider and trigger with secretNameLabels, and times them', async () => {
    const m = createMetrics({ processMetrics: false, secretNameLabels: true });
    m.observer({ op: 'rotateSecret', instance: 'vault', secret: 'db-password', trigger: 'manual', result: 'ok', latencyMs: 300 });
    m.observer({ op: 'rotateSecret', instance: 'vault', secret: 'db-password', trigger: 'time', result: 'ok', latencyMs: 1_500 });
    m.observer({ op: 'rotateSecret', instance: 'vault', secret: 'db-password', trigger: 'manual', result: 'error', category: 'TransientInfrastructure', code: 'WM_ERR_TIMEOUT', latencyMs: 2_500 });
    const s = await scrape(m);
    assert.equal(valueOf(s, 'rotation_success_total', { secret_name: 'db-password', provider: 'vault', strategy: 'manual' }), 1);
    assert.equal(valueOf(s, 'rotation_success_total', { secret_name: 'db-password', provider: 'vault', strategy: 'time' }), 1);
    assert.equal(valueOf(s, 'rotation_latency_ms_count', { secret_name: 'db-password' }), 2);
    assert.equal(valueOf(s, 'rotation_latency_ms_bucket', { secret_name: 'db-password', le: '2000' }), 2);
    assert.equal(valueOf(s, 'provider_operations_errors_total', { provider: 'vault', operation: 'rotateSecret', error_code: 'WM_ERR_TIMEOUT' }), 1);
    // A record that names no secret or trigger still counts, under "unknown".
    m.observer({ op: 'rotateSecret', instance: 'vault', result: 'ok', latencyMs: 10 });
    assert.equal(valueOf(await scrape(m), 'rotation_success_total', { secret_name: 'unknown', provider: 'vault', strategy: 'unknown' }), 1);
  });

  it('times plugin calls by instance and method, and counts the secret mounts delivered by strategy without reading values', async () => {
    const m = createMetrics({ processMetrics: false });
    const secrets = [
      { strategy: 'env', name: 'a', version: '1', envName: 'A', value: 's3cr3t-env' },
      { strategy: 'file', name: 'b', version: '1', path: '/run/b', value: 's3cr3t-file' },
      { strategy: 'file', name: 'c', version: '2', path: '/run/c', value: 's3cr3t-file2' },
    ];
    m.pluginCall('local', ids, { method: 'createWorker', params: { workerId: 'w-1', spec: {}, secrets }, latencyMs: 20 });
    m.pluginCall('local', ids, { method: 'refreshSecrets', params: { workerId: 'w-1', secrets: [secrets[2]] }, latencyMs: 2 });
    // A failed delivery delivered nothing.
    m.pluginCall('local', ids, { method: 'createWorker', params: { workerId: 'w-2', spec: {}, secrets }, latencyMs: 5, error: { code: 'WM_ERR_VALIDATION', category: 'ClientValidation' } });
    m.pluginCall('local', ids, { method: 'getWorkerStatus', params: { workerId: 'w-1' }, latencyMs: 0.3 });
    const text = await m.render();
    const s = parseExposition(text);
    assert.equal(valueOf(s, 'secrets_mounts_total', { provider: 'local', mount_strategy: 'env' }), 1);
    assert.equal(valueOf(s, 'secrets_mounts_total', { provider: 'local', mount_strategy: 'file' }), 3);
    assert.equal(valueOf(s, 'plugin_call_latency_ms_count', { plugin_instance: 'local', plugin: 'process', method: 'createWorker', result: 'ok' }), 1);
    assert.equal(valueOf(s, 'plugin_call_latency_ms_count', { plugin_instance: 'local', method: 'createWorker', result: 'error' }), 1);
    assert.equal(valueOf(s, 'plugin_call_latency_ms_bucket', { plugin_instance: 'local', method: 'getWorkerStatus', le: '0.5' }), 1);
    assert.equal(valueOf(s, 'plugin_call_errors_total', { plugin_instance: 'local', method: 'createWorker', error_code: 'WM_ERR_VALIDATION' }), 1);
    assert.doesNotMatch(text, /s3cr3t/);
  });

  it('counts plugin restarts, crashes by reason and quarantine from status changes', async () => {
    const m = createMetrics({ processMetrics: false });
    const base = { restarts: 0, crashes: 1 };
    m.pluginStatus('bad', ids, { ...base, state: 'crashed', reason: 'oom', code: 'HOST_ERR_PLUGIN_OUT_OF_MEMORY' });
    m.pluginStatus('bad', ids, { ...base, state: 'restarting', reason: 'oom', delayMs: 10, restarts: 1 });
    m.pluginStatus('bad', ids, { ...base, state: 'running', reason: 'restarted', restarts: 1 });
    m.pluginStatus('bad', ids, { ...base, state: 'crashed', reason: 'hang' });
    m.pluginStatus('bad', ids, { ...base, state: 'quarantined', reason: 'hang' });
    const s = await scrape(m);
    assert.equal(valueOf(s, 'plugin_restarts_total', { plugin_instance: 'bad', plugin: 'process' }), 1);
    assert.equal(valueOf(s, 'plugin_crashes_total', { plugin_instance: 'bad', reason: 'oom' }), 1);
    assert.equal(valueOf(s, 'plugin_crashes_total', { plugin_instance: 'bad', reason: 'hang' }), 1);
    assert.equal(valueOf(s, 'plugin_quarantined', { plugin_instance: 'bad' }), 1);
  });

  it('counts failed workers by reason family and health check failures from provider events', async () => {
    const m = createMetrics({ processMetrics: false });
    const at = new Date().toISOString();
    m.workerEvent('docker', { type: 'WorkerFailed', workerId: 'w-1', reason: 'Unhealthy', timestamp: at });
    m.workerEvent('docker', { type: 'WorkerFailed', workerId: 'w-2', reason: 'ExitCode137', timestamp: at });
    m.workerEvent('docker', { type: 'WorkerFailed', workerId: 'w-3', reason: 'ExitCode1', timestamp: at });
    m.workerEvent('docker', { type: 'WorkerTerminated', workerId: 'w-4', timestamp: at });
    const s = await scrape(m);
    assert.equal(valueOf(s, 'health_check_failures_total', { provider: 'docker' }), 1);
    assert.equal(valueOf(s, 'worker_failures_total', { provider: 'docker', reason: 'ExitCode' }), 2);
    assert.equal(valueOf(s, 'worker_failures_total', { provider: 'docker', reason: 'Unhealthy' }), 1);
    assert.equal(valueOf(s, 'worker_failures_total', { provider: 'docker' }), 3);
  });

  it('reads outbox depth and plugin state at scrape time from the watched sources', async () => {
    const m = createMetrics({ processMetrics: false });
    let depth = 3;
    m.watch({ bus: { stats: () => ({ adapter: 'test', connected: false, published: 0, pending: 2, outbox: { depth, oldestAgeMs: 1_500 }, redelivered: 0, deadLettered: 0 }) } });
    let s = await scrape(m);
    assert.equal(valueOf(s, 'event_outbox_depth'), 3);
    assert.equal(valueOf(s, 'event_outbox_oldest_age_ms'), 1_500);
    assert.equal(valueOf(s, 'event_bus_connected'), 0);
    depth = 0;
    s = await scrape(m);
    assert.equal(valueOf(s, 'event_outbox_depth'), 0);
  });

  it('times every publish of the instrumented bus by subject and status, and keeps a publish replaced later in the chain', async () => {
    const m = createMetrics({ processMetrics: false });
    const inner = new MemoryEventBus({ subjects });
    const bus = m.instrumentBus(inner);
    await bus.start();
    assert.equal(bus.adapter, 'memory');
    const seen: EventEnvelope[] = [];
    bus.subscribe('ci.>', (e) => void seen.push(e));
    await bus.publish(createEvent(subjects, 'h', 'workerCreated', { instance: 'local', type: 'WorkerCreated', workerId: 'w-1', timestamp: new Date().toISOString() }));
    // As a test or an embedder may do: wrap publish on the host's bus; the timing must stay and must not loop.
    const wrapped: string[] = [];
    const original = bus.publish.bind(bus);
    bus.publish = (e) => {
      wrapped.push(e.busSubject);
      return original(e);
    };
    await bus.publish(createEvent(subjects, 'h', 'workerTerminated', { instance: 'local', type: 'WorkerTerminated', workerId: 'w-1', timestamp: new Date().toISOString() }));
    await bus.stop();
    await assert.rejects(bus.publish(createEvent(subjects, 'h', 'workerFailed', { instance: 'local', type: 'WorkerFailed', workerId: 'w-1', reason: 'x', timestamp: new Date().toISOString() })));
    // The refused publish is timed once its rejection has gone through the instrumentation.
    const s = await waitFor(async () => {
      const samples = await scrape(m);
      return valueOf(samples, 'event_publish_latency_ms_count', { subject: 'ci.worker.failed', status: 'error' }) > 0 && samples;
    }, 'the refused publish to be timed');
    assert.deepEqual(wrapped, ['ci.worker.terminated', 'ci.worker.failed']);
    assert.equal(seen.length, 2);
    assert.equal(valueOf(s, 'event_publish_latency_ms_count', { subject: 'ci.worker.created', status: 'ok' }), 1);
    assert.equal(valueOf(s, 'event_publish_latency_ms_count', { subject: 'ci.worker.terminated', status: 'ok' }), 1);
    assert.equal(valueOf(s, 'event_publish_latency_ms_count', { subject: 'ci.worker.failed', status: 'error' }), 1);
    assert.equal(inner.stats().published, 2);
  });

  it('keeps label values bounded: past the budget a label reports "other"', async () => {
    const m = createMetrics({ processMetrics: false, maxLabelValues: 3 });
    for (let i = 0; i < 10; i++) m.observer({ op: 'createWorker', instance: 'local', result: 'error', category: 'Internal', code: `VENDOR_ERR_${i}`, latencyMs: 1 });
    const s = await scrape(m);
    const codes = new Set(s.filter((x) => x.name === 'provider_operations_errors_total').map((x) => x.labels['error_code']));
    assert.deepEqual([...codes].sort(), ['VENDOR_ERR_0', 'VENDOR_ERR_1', 'VENDOR_ERR_2', 'other']);
    assert.equal(valueOf(s, 'provider_operations_errors_total', { error_code: 'other' }), 7);
  });

  it('never throws into the operation it observes', () => {
    const m = createMetrics({ processMetrics: false });
    assert.doesNotThrow(() => m.observer({ op: 'createWorker', instance: 'local', result: 'ok', latencyMs: Number.NaN }));
    assert.doesNotThrow(() => m.observer(null as never));
  });
});

describe('metric labels', () => {
  it('reduces failure reasons to their family', () => {
    assert.equal(reasonFamily('ExitCode137'), 'ExitCode');
    assert.equal(reasonFamily('SignalSIGKILL'), 'Signal');
    assert.equal(reasonFamily('OutOfMemory'), 'OutOfMemory');
  });

  it('keeps known values after the budget is spent, and maps missing values to "unknown"', () => {
    const b = new LabelBudget(1);
    assert.equal(b.value('x', 'a'), 'a');
    assert.equal(b.value('x', 'b'), 'other');
    assert.equal(b.value('x', 'a'), 'a');
    assert.equal(b.value('y', 'b'), 'b');
    assert.equal(b.value('x', undefined), 'unknown');
  });
});
