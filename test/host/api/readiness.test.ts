import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { createEvent } from '../../../host/src/bus/createEvent.ts';
import { MemoryEventBus } from '../../../host/src/bus/MemoryEventBus.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../../helpers/natsServer.ts';
import { startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';

interface Readiness {
  status: string;
  checks: Array<{ check: string; ok: boolean; state: string; adapter?: string; outbox?: { depth: number; oldestAgeMs: number } }>;
  failed?: string[];
}

describe('/readyz and the memory bus', () => {
  it('is unavailable, naming the bus, once the bus has stopped', async () => {
    const t = await startTestHost('host: { id: api-ready-mem, stateDir: ${DIR}/state }\nplugins: []\ninstances: []\n');
    const bus = new MemoryEventBus();
    await bus.start();
    const app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus });
    try {
      assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      await bus.stop();
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json(), {
        status: 'unavailable',
        checks: [{ check: 'bus', ok: false, state: 'disconnected', adapter: 'memory', outbox: { depth: 0, oldestAgeMs: 0 } }],
        failed: ['bus'],
      });
    } finally {
      await app.close();
      await t.stop();
    }
  });
});

const nats = natsServerAvailable();
// How old the outbox may get before /readyz fails. The test must see it young (200) first, so this is seconds: a
// loaded machine between the spill and the next probe must not make it old already.
const OUTBOX_MAX_AGE_MS = budget(5_000);

describe('/readyz on a JetStream bus whose server goes away', { skip: nats.ok ? false : nats.message }, () => {
  let server: NatsServer;
  let t: TestHost;
  let app: FastifyInstance;
  const ready = async (): Promise<{ status: number; body: Readiness }> => {
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    return { status: res.statusCode, body: res.json<Readiness>() };
  };

  before(async () => {
    server = await startNatsServer();
    t = await startTestHost(`
host: { id: api-ready-js, stateDir: \${DIR}/state }
bus:
  adapter: jetstream
  subjectPrefix: ready
  jetstream:
    servers: ["${server.url}"]
    connectTimeoutMs: ${budget(30_000)}
    reconnectWaitMs: 100
    publishTimeoutMs: ${budget(5_000)}
    outbox: { spillAfterMs: 100 }
plugins: []
instances: []
`);
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: t.host.bus, subjects: t.host.subjects, outboxMaxAgeMs: OUTBOX_MAX_AGE_MS });
  });
  after(async () => {
    await app?.close();
    await t?.stop();
    await server?.dispose();
  });

  it('is ready while connected, stays ready on a young outbox, turns unavailable when the outbox ages, and recovers', async () => {
    const connected = await ready();
    assert.equal(connected.status, 200);
    assert.deepEqual(connected.body.checks[0], { check: 'bus', ok: true, state: 'connected', adapter: 'jetstream', outbox: { depth: 0, oldestAgeMs: 0 } });

    await server.stop();
    await waitFor(() => !t.host.bus.stats().connected, 'the bus to notice the disconnect');
    const event = createEvent(t.host.subjects, 'test', 'pluginCrashed', { instance: 'x', plugin: 'p', version: '1.0.0', state: 'crashed' });
    await t.host.bus.publish(event);
    const young = await waitFor(async () => {
      const r = await ready();
      return (r.body.checks[0]?.outbox?.depth ?? 0) > 0 ? r : undefined;
    }, 'the event to spill to the outbox');
    assert.equal(young.status, 200, JSON.stringify(young.body));
    assert.equal(young.body.checks[0]?.state, 'outbox');

    const old = await waitFor(async () => {
      const r = await ready();
      return r.status === 503 ? r : undefined;
    }, 'the outbox to age past outboxMaxAgeMs', OUTBOX_MAX_AGE_MS + 20_000);
    assert.deepEqual(old.body.failed, ['bus']);
    assert.ok((old.body.checks[0]?.outbox?.oldestAgeMs ?? 0) > OUTBOX_MAX_AGE_MS, JSON.stringify(old.body));

    await server.restart();
    const back = await waitFor(async () => {
      const r = await ready();
      return r.status === 200 && r.body.checks[0]?.state === 'connected' ? r : undefined;
    }, 'the bus to reconnect', 60_000);
    assert.equal(back.body.failed, undefined);
  });
});
