import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EventEnvelope } from '../../host/src/bus/EventEnvelope.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { waitFor } from '../helpers/waitFor.ts';

const available = natsServerAvailable();

describe('Host on JetStream while nats-server goes away', { skip: available.ok ? false : available.message }, () => {
  let nats: NatsServer;
  let t: TestHost;

  before(async () => {
    nats = await startNatsServer();
    t = await startTestHost(`
host: { id: fault-host, stateDir: \${DIR}/state }
bus:
  adapter: jetstream
  subjectPrefix: fault
  jetstream:
    servers: ["${nats.url}"]
    connectTimeoutMs: 30000
    reconnectWaitMs: 100
    # While the server is down nothing is sent (events go straight to the outbox), so this deadline only bounds the
    # acknowledgements of a healthy server: seconds, which a loaded machine can need, and none of them may fail.
    publishTimeoutMs: 10000
    outbox: { spillAfterMs: 200 }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process, default: true, config: { maxWorkers: 200 } }
`);
  });
  after(async () => {
    await t?.stop();
    await nats?.dispose();
  });

  it('creates and terminates 100 process workers with the bus down; every event arrives once, in per-worker order, after it is back', async () => {
    assert.equal(t.host.bus.adapter, 'jetstream');
    // Records what the host hands to the bus, in order, then publishes it unchanged.
    const published: EventEnvelope[] = [];
    const publish = t.host.bus.publish.bind(t.host.bus);
    t.host.bus.publish = (e) => {
      published.push(e);
      return publish(e);
    };
    await nats.stop();
    await waitFor(() => !t.host.bus.stats().connected, () => 'the host to notice the disconnect');

    const ids: string[] = [];
    const failures: unknown[] = [];
    const durations: number[] = [];
    const started = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 10 }, async () => {
      while (next < 100) {
        const i = next++;
        const t0 = performance.now();
        try {
          const { worker } = await t.host.workers.createWorker({ workerId: `w-fault-${i}`, spec: { command: ['sleep', '600'] } });
          ids.push(worker.workerId);
          await t.host.workers.terminateWorker(worker.workerId, { gracePeriodMs: 1_000 });
        } catch (error) {
          failures.push(error);
        }
        durations.push(performance.now() - t0);
      }
    }));
    const elapsed = performance.now() - started;
    assert.deepEqual(failures, []);
    assert.equal(ids.length, 100);
    // The provider's events reach the host on the plugin's event channel, after the calls that caused them answered.
    await waitFor(() => t.host.bus.stats().outbox.depth >= 200, () => `the outbox to hold the 200 events (it holds ${t.host.bus.stats().outbox.depth})`);
    const during = t.host.bus.stats();
    assert.equal(during.connected, false);
    durations.sort((a, b) => a - b);
    console.log(JSON.stringify({ workers: 100, elapsedMs: Math.round(elapsed), opP50Ms: Math.round(durations[50] ?? 0), opP95Ms: Math.round(durations[95] ?? 0), outboxDepth: during.outbox.depth, outboxOldestAgeMs: during.outbox.oldestAgeMs }));

    await nats.restart();
    const terminal = (e: EventEnvelope): boolean => e.busSubject === 'fault.worker.terminated' || e.busSubject === 'fault.worker.failed';
    await waitFor(
      () => ids.every((id) => t.events.some((e) => e.subject === id && terminal(e))),
      () => `terminal events of all workers (have ${new Set(t.events.filter(terminal).map((e) => e.subject)).size}, stats ${JSON.stringify(t.host.bus.stats())})`,
      60_000,
    );
    await waitFor(() => t.host.bus.stats().outbox.depth === 0, () => `an empty outbox (${JSON.stringify(t.host.bus.stats())})`);

    const seen = new Set<string>();
    for (const e of t.events) {
      assert.ok(!seen.has(e.id), `event ${e.id} (${e.busSubject} ${e.subject}) arrived twice`);
      seen.add(e.id);
    }
    for (const id of ids) {
      const mine = t.events.filter((e) => e.subject === id);
      // The bus's promise: each worker's events arrive in the order the host published them. (The lifecycle order
      // itself is the provider's business; see the report about the process provider emitting a state change first.)
      assert.deepEqual(mine.map((e) => e.id), published.filter((e) => e.subject === id).map((e) => e.id), `${id}: events out of publish order`);
      assert.equal(mine.filter((e) => e.busSubject === 'fault.worker.created').length, 1, id);
      assert.ok(mine.some(terminal), id);
    }
    assert.equal(published.filter((e) => e.subject !== undefined && ids.includes(e.subject)).length, t.events.filter((e) => e.subject !== undefined && ids.includes(e.subject)).length);
    assert.equal(t.logs.filter((l) => l.includes('event publish failed')).length, 0);
  });
});
