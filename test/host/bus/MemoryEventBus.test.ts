import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { createEvent, MemoryEventBus, subjectMatches, subjectsFor, type EventEnvelope } from '../../../host/src/bus/index.ts';

const subjects = subjectsFor('ci');
const event = (n: number, workerId = 'w-1'): EventEnvelope =>
  createEvent(subjects, 'host-a', 'workerStateChanged', { n }, { subject: workerId, correlationId: `c-${n}` });

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
      // A slow handler must not reorder what follows.
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
    await new Promise((r) => setImmediate(r));
    sub.unsubscribe();
    await bus.publish(event(2));
    await bus.stop();
    await bus.stop();
    assert.deepEqual(seen, [1]);
    await assert.rejects(bus.publish(event(3)), { code: 'HOST_ERR_PLUGIN_STOPPED' });
  });
});
