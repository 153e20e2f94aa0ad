import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError, type WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { channelLimits } from '../../../host/src/sandbox/ChannelGuard.ts';
import { parseExposition, valueOf } from '../observability/exposition.ts';
import { fixturePlugin, startTestHost } from '../../helpers/startTestHost.ts';
import { budget, within } from '../../helpers/waitFor.ts';
import { FORGED_FIELDS } from '../../fixtures/plugins/hostile-channel/index.ts';
import { rejection, startedIn, TIERS, waitFor, type SandboxRecord, type TestSandbox } from './sandboxHarness.ts';

type Provider = typeof WorkerProviderContract;

/** The hostile plugin builds 16 MB strings (and JSON text of them): more than the harness's small test heap. */
const HEAP_MB = 256;

function refusedCount(record: SandboxRecord<TestSandbox>, kind: string, reason: string): number {
  return record.sandbox.stats().refused.find((r) => r.kind === kind && r.reason === reason)?.count ?? 0;
}

/** The marker line a hostile-channel action logs after it: the host reads one thread's messages in order. */
async function marker(record: SandboxRecord<TestSandbox>, action: string): Promise<void> {
  await waitFor(() => record.logs.some((l) => l.message === `done ${action}`), `the marker line after '${action}'`);
}

/** A healthy instance's call completes: the host is not stuck on the hostile one's messages. */
async function healthyAnswers(healthy: SandboxRecord<TestSandbox>, workerId: string): Promise<void> {
  const echo = healthy.sandbox.proxy<Provider>();
  await within(echo.createWorker({ workerId, spec: { command: ['true'] } }), 'a create on the healthy instance');
  assert.deepEqual(await within(echo.getWorkerStatus({ workerId }), 'a call to the healthy instance'), { phase: 'Running' });
}

// Both tiers: the restricted tier's sandbox process guards its threads' messages itself and reports its counts.
for (const tier of TIERS) describe(`the channel from plugin threads to the host (${tier})`, () => {
  for (const [action, kind, reason] of [
    ['big-log', 'log', 'too-large'],
    ['deep-log', 'log', 'too-deep'],
    ['big-event', 'event', 'too-large'],
  ] as const) {
    it(`${action}: the message is refused unparsed and counted, its content never logged; a healthy instance keeps answering`, async (t) => {
      const healthy = await startedIn(tier, t, 'echo');
      const hostile = await startedIn(tier, t, 'hostile-channel', { limits: { heapMb: HEAP_MB } });
      assert.deepEqual(await hostile.sandbox.proxy<Provider>().getWorkerStatus({ workerId: action }), { phase: 'Running' });
      await marker(hostile, action);
      await healthyAnswers(healthy, `beside-${action}`);
      assert.equal(refusedCount(hostile, kind, reason), 1);
      assert.equal(hostile.events.length, 0, 'no event got through');
      assert.ok(!hostile.logs.some((l) => l.message.startsWith('a big') || l.message.startsWith('a deep')), 'the refused line is not in the log');
      const warn = hostile.logs.find((l) => l.message === 'plugin thread message dropped');
      assert.equal(warn?.level, 'warn');
      // Out of process, the line comes from inside the boundary, so the host nests its fields under `plugin` like
      // any other line from there: only `pluginId` is the host's.
      const fields = tier === 'thread' ? warn.fields : (warn.fields?.['plugin'] as Record<string, unknown> | undefined);
      assert.equal(fields?.['kind'], kind);
      assert.equal(fields?.['reason'], reason);
      assert.equal(typeof fields?.['bytes'], 'number');
      assert.equal(warn.fields?.['pluginId'], 'hostile-channel');
      // Sizes and kinds only: nothing of the message itself reaches the host's log.
      const logged = JSON.stringify(hostile.logs);
      assert.ok(logged.length < 10_000, `the host logged ${logged.length} characters`);
      assert.ok(!/x{64}|r{64}|"d":\{"d"/.test(logged), 'no content of the refused message is logged');
      assert.equal(hostile.sandbox.state, 'running', 'one refused message does not quarantine');
    });
  }

  it('a 16 MB log chunk ends its stream with HOST_ERR_PLUGIN_PROTOCOL and is counted', async (t) => {
    const hostile = await startedIn(tier, t, 'hostile-channel', { limits: { heapMb: HEAP_MB } });
    const stream = await hostile.sandbox.stream('getLogs', { workerId: 'any' });
    const error = await rejection(stream[Symbol.asyncIterator]().next());
    assert.equal(error.code, 'HOST_ERR_PLUGIN_PROTOCOL');
    assert.equal(error.details?.['reason'], 'too-large');
    assert.equal(refusedCount(hostile, 'stream', 'too-large'), 1);
    assert.ok(!JSON.stringify(hostile.logs).includes('d'.repeat(64)), 'no content of the chunk is logged');
  });

  for (const [action, kind, channel] of [
    ['flood-events', 'event', { eventsPerSecond: 50, eventBurst: 50, floodSeconds: 2 }],
    ['flood-logs', 'log', { logBytesPerSecond: 20_000, logBurstBytes: 20_000, floodSeconds: 2 }],
  ] as const) {
    it(`${action}: dropped past the rate and counted; a sustained flood quarantines with HOST_ERR_PLUGIN_FLOOD while a healthy instance keeps serving`, async (t) => {
      const healthy = await startedIn(tier, t, 'echo');
      const started = Date.now();
      const hostile = await startedIn(tier, t, 'hostile-channel', { limits: { heapMb: HEAP_MB, channel: channelLimits(channel) } });
      await hostile.sandbox.proxy<Provider>().getWorkerStatus({ workerId: action });
      // The healthy instance answers while the flood goes on.
      await healthyAnswers(healthy, `during-${action}`);
      const quarantined = await waitFor(() => hostile.statuses.find((s) => s.state === 'quarantined'), 'the flooding instance to be quarantined', 60_000);
      const elapsedS = (Date.now() - started) / 1_000;
      assert.equal(quarantined.code, 'HOST_ERR_PLUGIN_FLOOD');
      assert.equal(quarantined.reason, 'flood');
      assert.ok(refusedCount(hostile, kind, 'rate') > 0, 'drops past the rate are counted');
      // A token bucket lets through at most its burst plus its rate over the time it ran.
      if (kind === 'event') {
        assert.ok(hostile.events.length <= 50 + 50 * (elapsedS + 1), `${hostile.events.length} events got through in ${elapsedS} s`);
      } else {
        const bytes = hostile.logs.filter((l) => l.message === 'flood').length * 1_040;
        assert.ok(bytes <= 20_000 + 20_000 * (elapsedS + 1), `${bytes} log bytes got through in ${elapsedS} s`);
      }
      const error = await rejection(hostile.sandbox.proxy<Provider>().getWorkerStatus({ workerId: 'fine' }));
      assert.equal(error.code, 'HOST_ERR_PLUGIN_QUARANTINED');
      assert.match(error.message, /consecutive seconds/);
      assert.equal(error.cause instanceof WorkerManagerError ? error.cause.code : undefined, 'HOST_ERR_PLUGIN_FLOOD');
      await healthyAnswers(healthy, `after-${action}`);
      // The host's own warn lines about the drops are rate-limited too: a flood of thousands, a few lines.
      const warns = hostile.logs.filter((l) => l.message === 'plugin thread message dropped').length;
      assert.ok(warns <= 2 * (elapsedS + 2), `${warns} warn lines in ${elapsedS} s`);
    });
  }

  it('a hung thread is replaced (HOST_ERR_PLUGIN_HUNG) while its sibling forges heartbeats in its name as fast as it can', async (t) => {
    // The call's own deadline is far longer than the hang timeout: only hang detection can end it in time.
    const hostile = await startedIn(tier, t, 'hostile-heartbeat', { limits: { threads: 2, heartbeatMs: 50, hangTimeoutMs: budget(3_000), callTimeoutMs: budget(120_000) } });
    const proxy = hostile.sandbox.proxy<Provider>();
    const hung = rejection(proxy.getWorkerStatus({ workerId: 'hang' }));
    // The least busy thread, the sibling, takes this call and answers once it has forged a thousand heartbeats.
    const forging = await within(proxy.getWorkerStatus({ workerId: 'forging' }), 'the sibling to forge heartbeats');
    assert.equal(forging.phase, 'Terminated');
    assert.ok((forging.phase === 'Terminated' ? forging.exitCode ?? 0 : 0) >= 1_000);
    const error = await within(hung, 'the hung call to fail', 60_000);
    assert.equal(error.code, 'HOST_ERR_PLUGIN_HUNG');
    // The instance restarts on new threads and serves.
    assert.deepEqual(await within(proxy.getWorkerStatus({ workerId: 'fine' }), 'a call after the restart', 60_000), { phase: 'Running' });
  });

  it('plugin log fields go under `plugin` in the host\'s JSON line; the host\'s own fields are intact (and refusals reach /metrics)', async (t) => {
    const h = await startTestHost(`
host: { id: h-channel, stateDir: \${DIR}/state }
plugins:
  - name: hostile
    package: ${fixturePlugin('hostile-channel')}
    isolation: ${tier === 'thread' ? 'trusted' : 'restricted'}
instances:
  - { name: forger, plugin: hostile, config: { atSetup: log-fields } }
  - { name: big, plugin: hostile, config: { atSetup: big-log } }
`);
    t.after(() => h.stop());
    const forged = await waitFor(() => h.logs.find((l) => l.includes('a line with forged fields')), 'the plugin line with forged fields', 60_000);
    const line = JSON.parse(forged) as Record<string, unknown>;
    assert.equal(line['level'], 40);
    assert.equal(line['msg'], 'a line with forged fields');
    assert.equal(line['instance'], 'forger');
    assert.equal(line['source'], 'plugin');
    assert.equal(line['pluginId'], 'hostile-channel');
    assert.equal(line['hostId'], 'h-channel');
    assert.equal(typeof line['time'], 'number');
    assert.notEqual(line['time'], 0);
    assert.deepEqual(line['plugin'], { ...FORGED_FIELDS, kept: 'yes' });
    // Each host field once at the top level (JSON.parse keeps the last of duplicated keys, so count them in the text).
    for (const key of ['level', 'time', 'msg', 'instance', 'source', 'pluginId', 'hostId']) {
      assert.equal(forged.split(`"${key}":`).length - 1, 2, `"${key}" appears once for the host and once under plugin`);
    }
    await waitFor(() => h.logs.some((l) => l.includes('"msg":"done big-log"')), 'the marker after the big log line', 60_000);
    assert.ok(!h.logs.some((l) => l.includes('x'.repeat(64))), 'the 16 MB field is not in the log');
    const samples = parseExposition(await h.host.metrics.render());
    assert.equal(valueOf(samples, 'plugin_messages_refused_total', { plugin_instance: 'big', plugin: 'hostile-channel', kind: 'log', reason: 'too-large' }), 1);
  });
});
