import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkerPhase } from '@worker-manager/plugin-sdk';
import {
  checkTransition,
  LEDGER_PHASE_OF_SDK,
  LEDGER_PHASES,
  LEGAL_TRANSITIONS,
  ledgerStateOf,
  TERMINAL_PHASES,
  type LedgerPhase,
} from '../../../../host/src/workers/ledger/index.ts';

/** Phases reachable from `start` through the table. */
function reachable(start: LedgerPhase): Set<LedgerPhase> {
  const seen = new Set<LedgerPhase>([start]);
  const queue = [start];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    for (const next of LEGAL_TRANSITIONS[p]) {
      if (seen.has(next)) continue;
      seen.add(next);
      queue.push(next);
    }
  }
  return seen;
}

describe('LEGAL_TRANSITIONS', () => {
  it('has a row for every phase, names only known phases, and no self-loops (same phase is an update)', () => {
    assert.deepEqual(Object.keys(LEGAL_TRANSITIONS).sort(), [...LEDGER_PHASES].sort());
    for (const [from, tos] of Object.entries(LEGAL_TRANSITIONS)) {
      for (const to of tos) assert.ok(LEDGER_PHASES.includes(to) && to !== from, `${from} -> ${to}`);
      assert.equal(new Set(tos).size, tos.length, `${from} lists a phase twice`);
    }
  });

  it('gives the terminal phases no exits', () => {
    assert.deepEqual([...TERMINAL_PHASES].sort(), ['Failed', 'Terminated']);
    assert.deepEqual(LEGAL_TRANSITIONS.Terminated, []);
    assert.deepEqual(LEGAL_TRANSITIONS.Failed, []);
  });

  it('lets every live phase fail, and every phase that exists on a provider lose contact', () => {
    for (const p of LEDGER_PHASES.filter((q) => !TERMINAL_PHASES.has(q))) assert.ok(LEGAL_TRANSITIONS[p].includes('Failed'), p);
    for (const p of LEDGER_PHASES.filter((q) => !TERMINAL_PHASES.has(q) && q !== 'Pending' && q !== 'Unknown')) assert.ok(LEGAL_TRANSITIONS[p].includes('Unknown'), p);
    assert.ok(!LEGAL_TRANSITIONS.Pending.includes('Unknown'), 'nothing exists yet to lose contact with');
    assert.ok(!LEGAL_TRANSITIONS.Pending.includes('Stopping'), 'nothing exists yet to stop');
  });

  it('lets Unknown resolve to any phase except Pending', () => {
    assert.deepEqual([...LEGAL_TRANSITIONS.Unknown].sort(), LEDGER_PHASES.filter((p) => p !== 'Pending' && p !== 'Unknown').sort());
  });

  it('lets Stopping only end or lose contact, and ends healing only through Stopping or Failed', () => {
    assert.deepEqual(LEGAL_TRANSITIONS.Stopping, ['Terminated', 'Failed', 'Unknown']);
    assert.ok(!LEGAL_TRANSITIONS.Degraded.includes('Terminated'));
    assert.ok(!LEGAL_TRANSITIONS.Recovering.includes('Terminated'));
  });

  it('reaches every phase from Pending, and a terminal phase from every phase', () => {
    assert.deepEqual([...reachable('Pending')].sort(), [...LEDGER_PHASES].sort());
    for (const p of LEDGER_PHASES) assert.ok([...reachable(p)].some((q) => TERMINAL_PHASES.has(q)), p);
  });
});

describe('checkTransition', () => {
  it('accepts a legal move, rejects an illegal one as data, and tells a repeat from a change of details', () => {
    assert.deepEqual(checkTransition({ phase: 'Running' }, { phase: 'Paused' }), { ok: true, state: { phase: 'Paused' }, changed: true });
    assert.deepEqual(checkTransition({ phase: 'Terminated' }, { phase: 'Running' }), { ok: false, code: 'HOST_ERR_WORKER_TRANSITION_ILLEGAL', from: 'Terminated', to: 'Running' });
    const starting = { phase: 'Starting', pendingReason: 'ImagePull' } as const;
    assert.deepEqual(checkTransition(starting, { phase: 'Starting', pendingReason: 'Scheduling' }), { ok: true, state: { phase: 'Starting', pendingReason: 'Scheduling' }, changed: true });
    assert.deepEqual(checkTransition(starting, { ...starting, message: undefined }), { ok: true, state: starting, changed: false });
    assert.equal(checkTransition({ phase: 'Failed', reason: 'OOMKilled' }, { phase: 'Failed', reason: 'Lost' }).ok, false, 'a terminal outcome is not rewritten');
    assert.equal(checkTransition({ phase: 'Failed', reason: 'OOMKilled' }, { phase: 'Failed', reason: 'OOMKilled' }).ok, true, 'a redelivered terminal event is harmless');
    // A provider reports a failure twice: as a state change with its exit code, and as a WorkerFailed event, which has none.
    const oom = { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 } as const;
    assert.deepEqual(checkTransition(oom, { phase: 'Failed', reason: 'OOMKilled' }), { ok: true, state: oom, changed: false }, 'the same end with fewer details is a repeat');
    assert.equal(checkTransition(oom, { phase: 'Failed', reason: 'OOMKilled', exitCode: 1 }).ok, false, 'another exit code is a rewrite');
    assert.equal(checkTransition({ phase: 'Failed', reason: 'OOMKilled' }, oom).ok, false, 'details added to an end are a rewrite');
  });
});

describe('SDK phases', () => {
  it('map onto ledger phases, Terminating onto Stopping', () => {
    const sdk: WorkerPhase[] = ['Creating', 'Starting', 'Running', 'Paused', 'Terminating', 'Terminated', 'Failed', 'Unknown'];
    assert.deepEqual(Object.keys(LEDGER_PHASE_OF_SDK).sort(), [...sdk].sort());
    assert.equal(LEDGER_PHASE_OF_SDK.Terminating, 'Stopping');
    for (const p of sdk.filter((q) => q !== 'Terminating')) assert.equal(LEDGER_PHASE_OF_SDK[p], p);
  });

  it('keep the reason and exit code a provider reported', () => {
    assert.deepEqual(ledgerStateOf({ phase: 'Failed', reason: 'OOMKilled', exitCode: 137 }), { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 });
    assert.deepEqual(ledgerStateOf({ phase: 'Terminated', exitCode: 0 }), { phase: 'Terminated', exitCode: 0 });
    assert.deepEqual(ledgerStateOf({ phase: 'Terminating' }), { phase: 'Stopping' });
  });

  it('keep the pending reason of a worker that is Starting', () => {
    assert.deepEqual(ledgerStateOf({ phase: 'Starting', pendingReason: 'ImagePull' }), { phase: 'Starting', pendingReason: 'ImagePull' });
    assert.deepEqual(ledgerStateOf({ phase: 'Starting' }), { phase: 'Starting' });
  });
});
