import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { createEvent, MemoryEventBus, subjectIsSubset, subjectMatches, subjectsFor, subjectsIntersect, type EventEnvelope } from '../../../host/src/bus/index.ts';
import { waitFor } from '../../helpers/waitFor.ts';

const subjects = subjectsFor('ci');
const event = (n: number, workerId = 'w-1'): EventEnvelope =>
  createEvent(
    subjects,
    'host-a',
    'workerStateChanged',
    { instance: 'a', type: 'WorkerStateChanged', workerId, timestamp: new Date().toISOString(), oldState: { phase: 'Pending' }, newState: { phase: 'Running' }, n },
    { subject: workerId, correlationId: `c-${n}` },
  );

describe('subjects', () => {
  it('follows the seed 003 catalog under the configured prefix', () => {
    assert.equal(subjectsFor('ci').of('workerCreated'), 'ci.worker.created');
    assert.equal(subjectsFor('prod.eu').of('workerStateChanged'), 'prod.eu.worker.state_changed');
    assert.equal(subjects.of('authDenied'), 'ci.security.auth.denied');
    assert.equal(subjects.of('pluginQuarantined'), 'ci.plugin.quarantined');
    assert.equal(subjects.command('create'), 'ci.worker.cmd.create');
  });

  it('matches NATS wildcards the way nats-server does', () => {
    assert.equal(subjectMatches('ci.worker.*', 'ci.worker.created'), true);
    assert.equal(subjectMatches('ci.worker.*', 'ci.worker.cmd.create'), false);
    assert.equal(subjectMatches('ci.>', 'ci.worker.cmd.create'), true);
    assert.equal(subjectMatches('ci.>', 'ci'), false);
    assert.equal(subjectMatches('ci.worker.created', 'ci.worker.created'), true);
    assert.equal(subjectMatches('ci.worker.created', 'ci.worker.created.x'), false);
    assert.equal(subjectMatches('*.worker.created', 'ci.worker.created'), true);
  });
});

describe('MemoryEventBus', () => {
  it('builds CloudEvents 1.0 envelopes with ids, correlation and subject', () => {
    const e = event(1);
    assert.equal(e.specversion, '1.0');
    assert.equal(e.datacontenttype, 'application/json');
    assert.equal(e.type, 'dev.worker-manager.worker.state_changed');
    assert.equal(e.busSubject, 'ci.worker.state_changed');
    assert.equal(e.source, 'host-a');
    assert.equal(e.correlationid, 'c-1');
    assert.notEqual(event(1).id, e.id);
    assert.ok(!Number.isNaN(Date.parse(e.time)));
  });

  it('delivers to matching subscribers in publish order, and not to others', async () => {
    const bus = new MemoryEventBus();
    await bus.start();
    const got: number[] = [];
    const other: number[] = [];
    bus.subscribe('ci.worker.>', async (e) => {
      // A slow handler must not reorder what follows (the pause is the behaviour under test, not a wait).
      await new Promise((r) => setTimeout(r, (e.data as { n: number }).n % 2 === 0 ? 5 : 0));
      got.push((e.data as { n: number }).n);
    });
    bus.subscribe('ci.secret.*', (e) => void other.push((e.data as { n: number }).n));
    for (let n = 0; n < 20; n++) await bus.publish(event(n));
    await bus.stop();
    assert.deepEqual(got, [...Array(20).keys()]);
    assert.deepEqual(other, []);
  });

  it('keeps the publisher safe from a throwing subscriber and reports the failure', async () => {
    const failures: string[] = [];
    const bus = new MemoryEventBus({ onHandlerError: (err, e) => failures.push(`${(err as Error).message}:${e.busSubject}`) });
    await bus.start();
    const seen: number[] = [];
    bus.subscribe('ci.>', () => {
      throw new Error('boom');
    });
    bus.subscribe('ci.>', (e) => void seen.push((e.data as { n: number }).n));
    await bus.publish(event(1));
    await bus.publish(event(2));
    await bus.stop();
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(failures, ['boom:ci.worker.state_changed', 'boom:ci.worker.state_changed']);
  });

  it('rejects an envelope that does not match the schema, naming the field', async () => {
    const bus = new MemoryEventBus();
    await bus.start();
    const bad = { ...event(1), specversion: '0.3' } as unknown as EventEnvelope;
    await assert.rejects(bus.publish(bad), (err: unknown) => err instanceof WorkerManagerError && err.code === 'HOST_ERR_PLUGIN_PROTOCOL' && /specversion/.test(err.message));
  });

  it('stops delivering after unsubscribe and refuses publishing after stop', async () => {
    const bus = new MemoryEventBus();
    await bus.start();
    const seen: number[] = [];
    const sub = bus.subscribe('ci.>', (e) => void seen.push((e.data as { n: number }).n));
    await bus.publish(event(1));
    await waitFor(() => seen.length === 1, 'the first event to be delivered');
    sub.unsubscribe();
    await bus.publish(event(2));
    await bus.stop();
    await bus.stop();
    assert.deepEqual(seen, [1]);
    await assert.rejects(bus.publish(event(3)), { code: 'HOST_ERR_PLUGIN_STOPPED' });
  });
});

describe('MemoryEventBus at-least-once semantics (same as JetStream)', () => {
  it('redelivers an event whose handler throws, before anything after it, with the attempt number', async () => {
    const bus = new MemoryEventBus({ redeliveryDelayMs: 1 });
    await bus.start();
    const seen: Array<[number, number]> = [];
    let failures = 0;
    bus.subscribe('ci.worker.>', (e, d) => {
      seen.push([(e.data as { n: number }).n, d.attempt]);
      if ((e.data as { n: number }).n === 1 && failures++ < 2) throw new Error('transient');
    });
    await bus.publish(event(1));
    await bus.publish(event(2));
    await bus.stop();
    assert.deepEqual(seen, [[1, 1], [1, 2], [1, 3], [2, 1]]);
    assert.equal(bus.stats().redelivered, 2);
  });

  it('dead-letters an event after maxDeliver attempts to dlq.<prefix>.<consumer>, reports it once, and moves on', async () => {
    const reported: string[] = [];
    const bus = new MemoryEventBus({ maxDeliver: 3, redeliveryDelayMs: 1, subjects: subjectsFor('acme'), onHandlerError: (err) => reported.push((err as Error).message) });
    await bus.start();
    const dead: EventEnvelope[] = [];
    const ok: number[] = [];
    const acme = subjectsFor('acme');
    const mk = (n: number): EventEnvelope => createEvent(acme, 'h', 'pluginCrashed', { instance: 'i', plugin: 'p', version: '1.0.0', state: 'crashed', n });
    bus.subscribe('acme.plugin.*', (e) => {
      if ((e.data as { n: number }).n === 1) throw new Error('poison');
      ok.push((e.data as { n: number }).n);
    }, { durable: 'auditor' });
    bus.subscribe('dlq.acme.>', (e) => void dead.push(e));
    // A prefix-wide subscriber does not see dead letters: they live outside the prefix.
    const wide: string[] = [];
    bus.subscribe('acme.>', (e) => void wide.push(e.busSubject));
    const poison = mk(1);
    await bus.publish(poison);
    await bus.publish(mk(2));
    await bus.stop();
    assert.deepEqual(ok, [2]);
    assert.deepEqual(reported, ['poison']);
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.busSubject, 'dlq.acme.auditor');
    assert.equal(dead[0]?.causationid, poison.id);
    assert.deepEqual((dead[0]?.data as { event: EventEnvelope; deliveries: number }).event, poison);
    assert.equal((dead[0]?.data as { deliveries: number }).deliveries, 3);
    assert.deepEqual(wide, ['acme.plugin.crashed', 'acme.plugin.crashed']);
    assert.equal(bus.stats().deadLettered, 1);
  });

  it('shares the work of one durable name between its subscribers, each event handled once', async () => {
    const bus = new MemoryEventBus();
    await bus.start();
    const a: number[] = [];
    const b: number[] = [];
    bus.subscribe('ci.>', (e) => void a.push((e.data as { n: number }).n), { durable: 'workers' });
    bus.subscribe('ci.>', (e) => void b.push((e.data as { n: number }).n), { durable: 'workers' });
    for (let n = 0; n < 10; n++) await bus.publish(event(n));
    await bus.stop();
    assert.deepEqual([...a, ...b].sort((x, y) => x - y), [...Array(10).keys()]);
    assert.ok(a.length > 0 && b.length > 0);
  });

  it('keeps each worker\'s events in order per subscriber while handlers fail and retry', async () => {
    const bus = new MemoryEventBus({ redeliveryDelayMs: 1 });
    await bus.start();
    const got = new Map<string, number[]>();
    bus.subscribe('ci.worker.*', (e, d) => {
      const n = (e.data as { n: number }).n;
      if (n % 7 === 3 && d.attempt === 1) throw new Error('flaky');
      got.set(e.subject ?? '', [...(got.get(e.subject ?? '') ?? []), n]);
    });
    for (let n = 0; n < 30; n++) for (const w of ['w-1', 'w-2', 'w-3']) await bus.publish(event(n, w));
    await bus.stop();
    for (const w of ['w-1', 'w-2', 'w-3']) assert.deepEqual(got.get(w), [...Array(30).keys()], w);
  });

  it('validates event data against its type\'s schema, tolerating fields a newer version added', async () => {
    const bus = new MemoryEventBus();
    await bus.start();
    const bad = createEvent(subjects, 'h', 'workerCreated', { instance: 'a', type: 'WorkerCreated', timestamp: 'now' });
    await assert.rejects(bus.publish(bad), (err: unknown) => err instanceof WorkerManagerError && err.code === 'HOST_ERR_PLUGIN_PROTOCOL' && /workerId/.test(err.message));
    const newer = { ...createEvent(subjects, 'h', 'workerCreated', { instance: 'a', type: 'WorkerCreated', workerId: 'w-1', timestamp: 'now', region: 'eu' }), dataversion: 2 };
    await bus.publish(newer);
    assert.equal(bus.stats().published, 1);
  });
});

describe('subject sets', () => {
  it('tells whether one pattern lies inside another, and whether two overlap', () => {
    assert.equal(subjectIsSubset('ci.worker.created', 'ci.worker.*'), true);
    assert.equal(subjectIsSubset('ci.worker.*', 'ci.>'), true);
    assert.equal(subjectIsSubset('ci.>', 'ci.worker.*'), false);
    assert.equal(subjectIsSubset('ci.worker.cmd.create', 'ci.worker.*'), false);
    assert.equal(subjectIsSubset('ci.*', 'ci.*'), true);
    assert.equal(subjectsIntersect('ci.>', 'ci.worker.*'), true);
    assert.equal(subjectsIntersect('ci.*.created', 'ci.worker.*'), true);
    assert.equal(subjectsIntersect('ci.plugin.*', 'ci.worker.*'), false);
    assert.equal(subjectsIntersect('dlq.ci.>', 'ci.>'), false);
    assert.equal(subjectsIntersect('ci.worker.*', 'ci.worker.cmd.create'), false);
  });
});
