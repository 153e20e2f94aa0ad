import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import type { EventBus } from '../../../host/src/bus/EventBus.ts';
import type { EventEnvelope } from '../../../host/src/bus/EventEnvelope.ts';
import { createEvent } from '../../../host/src/bus/createEvent.ts';
import { RecentEvents } from '../../../host/src/api/recentEvents.ts';
import type { Principal } from '../../../host/src/security/Principal.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { waitFor, within } from '../../helpers/waitFor.ts';
import { openSse } from './sseClient.ts';

/** The host's real bus, counting the subscriptions that are open (to see that a stream gives its own back). */
function countingBus(bus: EventBus): { bus: EventBus; open: () => number } {
  let open = 0;
  const counted: EventBus = Object.create(bus) as EventBus;
  counted.subscribe = (pattern, handler, options) => {
    const sub = bus.subscribe(pattern, handler, options);
    open++;
    let done = false;
    return {
      ready: sub.ready,
      unsubscribe: () => {
        if (!done) open--;
        done = true;
        sub.unsubscribe();
      },
    };
  };
  counted.stats = () => bus.stats();
  return { bus: counted, open: () => open };
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

describe('GET /v1/events (Server-Sent Events of bus events) on a listening server', () => {
  let t: TestHost;
  let app: FastifyInstance;
  let base: string;
  let open: () => number;
  const publish = (name: 'pluginCrashed' | 'pluginQuarantined', instance: string, context: { tenant?: string; subject?: string } = {}): Promise<EventEnvelope> => {
    const event = createEvent(t.host.subjects, 'test', name, { instance, plugin: 'p', version: '1.0.0', state: 'crashed' }, context);
    return t.host.bus.publish(event).then(() => event);
  };

  before(async () => {
    t = await startTestHost(`
host: { id: api-events, stateDir: \${DIR}/state }
${processProviderYaml()}`);
    const counting = countingBus(t.host.bus);
    open = counting.open;
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: counting.bus, subjects: t.host.subjects });
    // What the auth hook does for an authenticated caller: a test-only header names the caller's tenant.
    app.addHook('onRequest', async (req) => {
      const tenant = req.headers['x-test-tenant'];
      if (typeof tenant === 'string') {
        const principal: Principal = { kind: 'user', id: 'u1', tenant, roles: [], scopes: [], source: 'oidc' };
        Object.assign(req, { principal });
      }
    });
    base = await listen(app);
  });
  after(async () => {
    await app.close();
    await t.stop();
  });

  it('streams every event published after it opened, in order, with the CloudEvents id as SSE id and the envelope as data', async () => {
    const stream = await openSse(`${base}/v1/events`, { 'x-correlation-id': 'corr-events' });
    try {
      assert.equal(stream.status, 200);
      assert.match(String(stream.headers['content-type']), /^text\/event-stream/);
      assert.equal(stream.headers['x-correlation-id'], 'corr-events');
      const sent = [await publish('pluginCrashed', 'one'), await publish('pluginQuarantined', 'two'), await publish('pluginCrashed', 'three')];
      const got = await stream.waitFor(3);
      assert.deepEqual(got.map((e) => e.id), sent.map((e) => e.id));
      assert.deepEqual(got.map((e) => JSON.parse(e.data) as unknown), sent.map((e) => JSON.parse(JSON.stringify(e)) as unknown));
      assert.ok(got.every((e) => e.event === undefined), 'no event: field, so EventSource.onmessage receives them');
    } finally {
      stream.close();
    }
  });

  it('filters by subject pattern, type and worker id', async () => {
    const quarantined = t.host.subjects.typeOf('pluginQuarantined');
    const bySubject = await openSse(`${base}/v1/events?subject=${t.host.subjects.prefix}.plugin.quarantined`);
    const byType = await openSse(`${base}/v1/events?type=${quarantined}`);
    const byWorker = await openSse(`${base}/v1/events?workerId=w-1&workerId=w-3`);
    const wildcard = await openSse(`${base}/v1/events?subject=${t.host.subjects.prefix}.*.crashed`);
    try {
      const e1 = await publish('pluginCrashed', 'x', { subject: 'w-1' });
      const e2 = await publish('pluginQuarantined', 'x', { subject: 'w-2' });
      const e3 = await publish('pluginCrashed', 'x', { subject: 'w-3' });
      const e4 = await publish('pluginQuarantined', 'x', { subject: 'w-3' });
      assert.deepEqual((await bySubject.waitFor(2)).map((e) => e.id), [e2.id, e4.id]);
      assert.deepEqual((await byType.waitFor(2)).map((e) => e.id), [e2.id, e4.id]);
      assert.deepEqual((await byWorker.waitFor(3)).map((e) => e.id), [e1.id, e3.id, e4.id]);
      assert.deepEqual((await wildcard.waitFor(2)).map((e) => e.id), [e1.id, e3.id]);
      // A marker after everything: once it arrives, nothing filtered out can still be on its way.
      const marker = await publish('pluginQuarantined', 'x', { subject: 'w-1' });
      await byWorker.waitFor(4);
      await bySubject.waitFor(3);
      assert.deepEqual(bySubject.events.map((e) => e.id), [e2.id, e4.id, marker.id]);
      assert.equal(wildcard.events.length, 2);
    } finally {
      for (const s of [bySubject, byType, byWorker, wildcard]) s.close();
    }
  });

  it('carries the worker events of what the API itself does', async () => {
    const stream = await openSse(`${base}/v1/events?workerId=ev-1&type=${t.host.subjects.typeOf('workerCreated')}`);
    try {
      const created = await app.inject({ method: 'POST', url: '/v1/workers', payload: { workerId: 'ev-1', spec: { command: ['sleep', '600'] } }, headers: { 'x-correlation-id': 'corr-ev-1' } });
      assert.equal(created.statusCode, 202, created.body);
      assert.equal(created.headers['location'], '/v1/workers/ev-1');
      const [event] = await stream.waitFor(1);
      const envelope = JSON.parse(event?.data ?? '{}') as EventEnvelope<{ workerId: string; instance: string }>;
      assert.equal(envelope.data.workerId, 'ev-1');
      assert.equal(envelope.data.instance, 'a');
    } finally {
      stream.close();
      await t.host.workers.terminateWorker('ev-1').catch(() => undefined);
    }
  });

  it('never sends a caller with a tenant the events of another tenant', async () => {
    const stream = await openSse(`${base}/v1/events?subject=${t.host.subjects.prefix}.plugin.>`, { 'x-test-tenant': 'blue' });
    try {
      await publish('pluginCrashed', 'red-1', { tenant: 'red' });
      const blue = await publish('pluginCrashed', 'blue-1', { tenant: 'blue' });
      const shared = await publish('pluginCrashed', 'host-wide');
      assert.deepEqual((await stream.waitFor(2)).map((e) => e.id), [blue.id, shared.id]);
    } finally {
      stream.close();
    }
  });

  it('resumes after Last-Event-ID: what was published meanwhile first, each once and in order, then the live events', async () => {
    const plugins = `${t.host.subjects.prefix}.plugin.>`;
    const seen = await publish('pluginCrashed', 'before');
    const missed = [await publish('pluginQuarantined', 'away-1'), await publish('pluginCrashed', 'away-2', { subject: 'w-away' })];
    const stream = await openSse(`${base}/v1/events?subject=${plugins}`, { 'last-event-id': seen.id });
    try {
      const live = await publish('pluginCrashed', 'live');
      assert.deepEqual((await stream.waitFor(3)).map((e) => e.id), [...missed, live].map((e) => e.id));
      // A marker after everything: once it arrives, no duplicate of a replayed event can still be on its way.
      const marker = await publish('pluginCrashed', 'marker');
      await stream.waitFor(4);
      assert.deepEqual(stream.events.map((e) => e.id), [...missed, live, marker].map((e) => e.id));
    } finally {
      stream.close();
    }
  });

  it('applies the filters and the tenant to the replayed events too', async () => {
    const seen = await publish('pluginCrashed', 'before', { tenant: 'blue' });
    await publish('pluginCrashed', 'red-away', { tenant: 'red' });
    const blue = await publish('pluginCrashed', 'blue-away', { tenant: 'blue' });
    await publish('pluginQuarantined', 'blue-other-type', { tenant: 'blue' });
    const stream = await openSse(`${base}/v1/events?type=${t.host.subjects.typeOf('pluginCrashed')}`, { 'x-test-tenant': 'blue', 'last-event-id': seen.id });
    try {
      const marker = await publish('pluginCrashed', 'marker', { tenant: 'blue' });
      await stream.waitFor(2);
      assert.deepEqual(stream.events.map((e) => e.id), [blue.id, marker.id]);
    } finally {
      stream.close();
    }
  });

  it('starts with an event: gap when it no longer holds the Last-Event-ID, then goes on live', async () => {
    const stream = await openSse(`${base}/v1/events`, { 'last-event-id': 'evt-from-before-a-restart' });
    try {
      const live = await publish('pluginCrashed', 'after-gap');
      const [gap, next] = await stream.waitFor(2);
      assert.equal(gap?.event, 'gap');
      assert.equal(gap?.id, undefined, 'a gap must not move the id a client resumes after');
      const body = JSON.parse(gap?.data ?? '{}') as { lastEventId?: string; message?: string };
      assert.equal(body.lastEventId, 'evt-from-before-a-restart');
      assert.match(body.message ?? '', /not among the events this server still holds/);
      assert.equal(next?.id, live.id);
    } finally {
      stream.close();
    }
  });

  it('gives its subscription back when the client goes away', async () => {
    // The server's own history of recent events is one subscription for as long as it runs.
    const settle = (n: number): Promise<boolean> => waitFor(() => open() === n, () => `${n} open subscription(s), found ${open()}`);
    // Streams of earlier tests were dropped by their clients too; the server may still be noticing.
    await settle(1);
    const stream = await openSse(`${base}/v1/events`);
    assert.equal(open(), 2);
    stream.close();
    await stream.closed;
    await settle(1);
  });

  it('answers a bad filter with 400 and the parameter, before any streaming', async () => {
    const outside = await fetch(`${base}/v1/events?subject=dlq.>`);
    assert.equal(outside.status, 400);
    assert.deepEqual(((await outside.json()) as { details: { path: string } }).details.path, '/querystring/subject');
    for (const query of ['subject=ci..x', 'subject=ci.>.x', 'workerId=Bad_Id', 'colour=red']) {
      const res = await fetch(`${base}/v1/events?${query}`);
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as { code: string; details: { path: string } };
      assert.equal(body.code, 'WM_ERR_VALIDATION', query);
      assert.match(body.details.path, /^\/querystring\//, query);
    }
  });

  it('answers 503 HOST_ERR_BUS_UNAVAILABLE on a server built without a bus', async () => {
    const bare = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
    try {
      const res = await bare.inject({ method: 'GET', url: '/v1/events' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json<{ code: string }>().code, 'HOST_ERR_BUS_UNAVAILABLE');
    } finally {
      await bare.close();
    }
  });
});

describe('GET /v1/events when the server closes', () => {
  it('ends open streams cleanly (a completed response) and releases their subscriptions', async () => {
    const t = await startTestHost(`
host: { id: api-events-close, stateDir: \${DIR}/state }
plugins: []
instances: []
`);
    const counting = countingBus(t.host.bus);
    const app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: counting.bus, subjects: t.host.subjects });
    try {
      const base = await listen(app);
      const streams = await Promise.all([openSse(`${base}/v1/events`), openSse(`${base}/v1/events?type=x`)]);
      // Two streams and the server's history of recent events.
      assert.equal(counting.open(), 3);
      // Without ending them, close() would wait for the open streams for ever.
      await within(app.close(), 'close() to end the open streams rather than wait for them');
      for (const s of streams) assert.deepEqual(await s.closed, { ended: true });
      assert.equal(counting.open(), 0);
    } finally {
      await app.close();
      await t.stop();
    }
  });
});

describe('RecentEvents (the history a resumed /v1/events stream replays from)', () => {
  it('keeps at least its capacity of the newest events, once each, and forgets the older ones', async () => {
    const t = await startTestHost(`
host: { id: api-recent, stateDir: \${DIR}/state }
plugins: []
instances: []
`);
    const recent = new RecentEvents(t.host.bus, `${t.host.subjects.prefix}.>`, 3);
    try {
      const sent: EventEnvelope[] = [];
      for (let i = 0; i < 7; i++) {
        const event = createEvent(t.host.subjects, 'test', 'pluginCrashed', { instance: `i${i}`, plugin: 'p', version: '1.0.0', state: 'crashed' });
        await t.host.bus.publish(event);
        sent.push(event);
      }
      const ids = (events: EventEnvelope[] | undefined): string[] | undefined => events?.map((e) => e.id);
      await waitFor(() => recent.after(sent[5]!.id)?.length === 1, 'the history to hold the newest events');
      assert.deepEqual(ids(recent.after(sent[3]!.id)), ids(sent.slice(4)));
      assert.deepEqual(ids(recent.after(sent[6]!.id)), []);
      assert.equal(recent.after(sent[0]!.id), undefined, 'the oldest events are forgotten');
      assert.equal(recent.after('never-published'), undefined);
      // A redelivered event is not kept twice (the marker after it shows the redelivery has been seen).
      await t.host.bus.publish(sent[6]!);
      const marker = createEvent(t.host.subjects, 'test', 'pluginCrashed', { instance: 'marker', plugin: 'p', version: '1.0.0', state: 'crashed' });
      await t.host.bus.publish(marker);
      await waitFor(() => recent.after(marker.id) !== undefined, 'the history to hold the marker');
      assert.deepEqual(ids(recent.after(sent[3]!.id)), ids([...sent.slice(4), marker]));
    } finally {
      recent.close();
      await t.stop();
    }
  });
});
