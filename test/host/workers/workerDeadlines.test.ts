import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerRecord } from '../../../host/src/workers/ledger/index.ts';
import { applyPatch, applyTransition, newRecord } from '../../../host/src/workers/ledger/recordChanges.ts';
import { lifecycleDue } from '../../../host/src/workers/workerDeadlines.ts';

// What the host's lifecycle arms for a record is computed from the record alone, so a restarted host arms the same
// deadlines: these pin how.

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (ms: number): Date => new Date(T0 + ms);

function record(spec: WorkerRecord['spec'] = {}, startTimeoutMs?: number): WorkerRecord {
  return newRecord({ id: 'w-1', tenant: 't', owner: 'o', instance: 'a', spec, ...(startTimeoutMs === undefined ? {} : { startTimeoutMs }) }, at(0));
}

function move(r: WorkerRecord, to: Parameters<typeof applyTransition>[1], ms: number): WorkerRecord {
  const change = applyTransition(r, to, at(ms), at(ms));
  assert.ok(change.ok, `${r.state.phase} -> ${to.phase}`);
  return change.record;
}

describe('lifecycleDue', () => {
  it('runs the start timeout from the record\'s creation while it is Pending, Creating or Starting, with the last pending reason', () => {
    let r = record({}, 5_000);
    assert.deepEqual(lifecycleDue(r, 99_000), { kind: 'start', at: T0 + 5_000, ending: { reason: 'StartTimeout', message: 'did not start within 5000 ms (Pending)' } }, 'the record\'s own timeout wins over the instance\'s');
    r = move(move(r, { phase: 'Creating' }, 100), { phase: 'Starting', pendingReason: 'ImagePull' }, 200);
    assert.deepEqual(lifecycleDue(r, undefined), {
      kind: 'start', at: T0 + 5_000,
      ending: { reason: 'StartTimeout', message: 'did not start within 5000 ms (Starting, last pending reason ImagePull)', pendingReason: 'ImagePull' },
    });
    assert.equal(lifecycleDue(record(), undefined), undefined, 'no start timeout configured: nothing due');
    assert.equal(lifecycleDue(record(), 7_000)?.at, T0 + 7_000, 'a record without its own takes the instance\'s');
  });

  it('runs the deadline from the first time the worker was Running; a restart does not extend it, and without timeoutMs nothing is due', () => {
    let r = move(move(record({ timeoutMs: 60_000 }, 5_000), { phase: 'Creating' }, 100), { phase: 'Running' }, 3_000);
    assert.deepEqual(lifecycleDue(r, 5_000), { kind: 'deadline', at: T0 + 63_000, ending: { reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 60000 ms' } });
    // Recovering -> Starting -> Running (a restart): the first Running time stays.
    r = move(move(move(r, { phase: 'Recovering' }, 10_000), { phase: 'Starting' }, 11_000), { phase: 'Running' }, 12_000);
    assert.equal(lifecycleDue(r, 5_000)?.at, T0 + 63_000);
    r = move(r, { phase: 'Paused' }, 20_000);
    assert.equal(lifecycleDue(r, 5_000)?.at, T0 + 63_000, 'paused time counts');
    assert.equal(lifecycleDue(move(move(record(), { phase: 'Creating' }, 1), { phase: 'Running' }, 2), 5_000), undefined);
  });

  it('makes a decided ending due at once, and nothing once the record has ended', () => {
    const running = move(record({ timeoutMs: 1_000 }), { phase: 'Creating' }, 1);
    const decided = applyPatch(running, { desired: 'Terminated', ending: { reason: 'HostShutdown', message: 'bye', at: at(50).toISOString() } }, at(50));
    assert.deepEqual(lifecycleDue(decided, 5_000), { kind: 'ending', at: T0 + 50, ending: { reason: 'HostShutdown', message: 'bye' } });
    assert.equal(lifecycleDue(move(decided, { phase: 'Terminated', exitCode: 143 }, 60), 5_000), undefined);
    assert.equal(lifecycleDue(move(running, { phase: 'Failed', reason: 'ExitCode1' }, 60), 5_000), undefined);
  });
});
