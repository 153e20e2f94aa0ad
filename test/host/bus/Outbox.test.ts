import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEvent, subjectsFor, type EventEnvelope } from '../../../host/src/bus/index.ts';
import { Outbox } from '../../../host/src/bus/Outbox.ts';

const subjects = subjectsFor('ci');
const ev = (workerId: string): EventEnvelope => createEvent(subjects, 'h', 'workerTerminated', { instance: 'a', type: 'WorkerTerminated', workerId, timestamp: new Date().toISOString() }, { subject: workerId });

describe('Outbox', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-outbox-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('gives back, in order, what was appended and not acknowledged, across a reopen', async () => {
    const file = path.join(dir, 'a', 'events.jsonl');
    const one = new Outbox(file);
    assert.deepEqual(await one.open(), []);
    const events = ['w-1', 'w-2', 'w-3', 'w-4'].map(ev);
    await one.append(events.slice(0, 2));
    await one.append(events.slice(2));
    one.ack(events[1]?.id ?? '');
    assert.equal(one.depth, 3);
    assert.ok(one.oldestAgeMs() >= 0);
    await one.close();

    const two = new Outbox(file);
    assert.deepEqual((await two.open()).map((e) => e.id), [events[0], events[2], events[3]].map((e) => e?.id));
    assert.equal(two.depth, 3);
    // Reopening compacted the file to the pending events only.
    assert.equal((await readFile(file, 'utf8')).trim().split('\n').length, 3);
    await two.close();
  });

  it('ignores a torn last line (a crash in the middle of a write)', async () => {
    const file = path.join(dir, 'b', 'events.jsonl');
    const one = new Outbox(file);
    await one.open();
    const e = ev('w-9');
    await one.append([e]);
    await one.close();
    await appendFile(file, '{"put":{"specversion":"1.0","id":"torn');
    const two = new Outbox(file);
    assert.deepEqual((await two.open()).map((x) => x.id), [e.id]);
    await two.close();
  });

  it('starts the file over once everything is acknowledged', async () => {
    const file = path.join(dir, 'c', 'events.jsonl');
    const box = new Outbox(file);
    await box.open();
    const events = ['w-1', 'w-2'].map(ev);
    await box.append(events);
    assert.ok((await stat(file)).size > 0);
    for (const e of events) box.ack(e.id);
    await box.close();
    assert.equal(box.depth, 0);
    assert.equal(box.oldestAgeMs(), 0);
    assert.equal((await stat(file)).size, 0);
  });
});
