import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HISTORY_LIMIT, LEDGER_PHASES, LEGAL_TRANSITIONS, TERMINAL_PHASES, type WorkerStore } from '../../../../host/src/workers/ledger/index.ts';
import { idempotencySuite } from './idempotencySuite.ts';
import { newWorker, stateIn, testClock, type StoreHarness } from './ledgerFixtures.ts';
import { listingSuite } from './listingSuite.ts';

/**
 * The contract every WorkerStore adapter must keep, run once per adapter against a real database (a SQLite file, a
 * JetStream KV bucket on a real nats-server). Adapter-specific tests live beside the adapter's test file.
 */
export function workerStoreSuite(harness: StoreHarness): void {
  describe(`WorkerStore contract (${harness.name})`, () => {
    const clock = testClock();
    let store: WorkerStore;
    before(async () => {
      store = await harness.open(clock.now);
    });
    after(() => store.close());

    it('creates a record with the store-owned fields filled in, and reads it back', async () => {
      const created = await store.create(newWorker('c-basic', { correlationId: 'corr-1' }));
      const at = clock.now().toISOString();
      assert.deepEqual(created, {
        ...newWorker('c-basic'),
        correlationId: 'corr-1',
        desired: 'Running',
        state: { phase: 'Pending' },
        timestamps: { Pending: at },
        createdAt: at,
        updatedAt: at,
        restartCount: 0,
        origin: 'request',
        history: [],
        revision: 1,
      });
      assert.deepEqual(await store.get('c-basic'), created);
      assert.equal(await store.get('c-missing'), undefined);
      assert.equal(await store.get('Not A Worker Id'), undefined);
    });

    it('refuses a second record with the same id, and leaves the first as it was', async () => {
      const first = await store.create(newWorker('c-dup'));
      await assert.rejects(store.create(newWorker('c-dup', { tenant: 'tenant-b' })), { code: 'HOST_ERR_WORKER_RECORD_EXISTS' });
      assert.deepEqual(await store.get('c-dup'), first);
    });

    it('refuses malformed records: a secret value in the spec, a Failed state without reason, a bad id', async () => {
      const withValue = newWorker('c-secret', { spec: { image: 'x', secretRefs: [{ name: 's', mount: 'env', value: 'hunter2' } as never] } });
      await assert.rejects(store.create(withValue), { code: 'HOST_ERR_WORKER_RECORD_INVALID' });
      await assert.rejects(store.create(newWorker('c-noreason', { state: { phase: 'Failed' } })), { code: 'HOST_ERR_WORKER_RECORD_INVALID' });
      await assert.rejects(store.create(newWorker('Bad_Id')), { code: 'HOST_ERR_WORKER_RECORD_INVALID' });
      assert.equal(await store.get('c-secret'), undefined);
      assert.equal(await store.get('c-noreason'), undefined);
    });

    describe('every pair of phases, generated from LEGAL_TRANSITIONS', () => {
      for (const from of LEDGER_PHASES) {
        const legal = LEGAL_TRANSITIONS[from];
        it(`from ${from}: applies ${legal.join(', ') || 'nothing'}; rejects the rest unapplied`, async () => {
          for (const to of LEDGER_PHASES.filter((p) => p !== from)) {
            const id = `t-${from}-${to}`.toLowerCase();
            await store.create(newWorker(id, { state: stateIn(from) }));
            const outcome = await store.transition(id, stateIn(to));
            const stored = await store.get(id);
            if (legal.includes(to)) {
              assert.ok(outcome.ok, `${from} -> ${to} must be applied`);
              assert.deepEqual(outcome.record.state, stateIn(to));
              assert.equal(outcome.record.revision, 2);
              assert.deepEqual(outcome.record.history.map((h) => [h.from, h.to, h.revision]), [[from, to, 2]]);
              assert.deepEqual(stored, outcome.record);
            } else {
              assert.deepEqual({ ...outcome, record: undefined }, { ok: false, code: 'HOST_ERR_WORKER_TRANSITION_ILLEGAL', from, to, record: undefined }, `${from} -> ${to} must be rejected`);
              assert.equal(stored?.revision, 1, `${from} -> ${to} must not be written`);
              assert.deepEqual(stored?.state, stateIn(from));
              assert.deepEqual(outcome.record, stored);
            }
          }
        });
      }
    });

    it('treats a same-phase change of details as an update, except in a terminal phase; an exact repeat writes nothing', async () => {
      for (const phase of LEDGER_PHASES) {
        const id = `same-${phase}`.toLowerCase();
        await store.create(newWorker(id, { state: stateIn(phase) }));
        const repeat = await store.transition(id, stateIn(phase));
        assert.ok(repeat.ok);
        assert.equal(repeat.record.revision, 1, `repeating ${phase} must not write`);
        const changed = await store.transition(id, { ...stateIn(phase), message: 'details changed' });
        assert.equal(changed.ok, !TERMINAL_PHASES.has(phase), phase);
        assert.equal((await store.get(id))?.revision, TERMINAL_PHASES.has(phase) ? 1 : 2, phase);
      }
    });

    it('keeps the first time of each phase, sets finishedAt on the terminal phase, and drops stale details', async () => {
      await store.create(newWorker('life'));
      const steps = [
        { phase: 'Creating' },
        { phase: 'Starting', pendingReason: 'ImagePull' },
        { phase: 'Starting', pendingReason: 'Scheduling' },
        { phase: 'Running' },
        { phase: 'Degraded', reason: 'HealthCheckFailed' },
        { phase: 'Running' },
        { phase: 'Stopping' },
        { phase: 'Terminated', exitCode: 0 },
      ] as const;
      const entered = new Map<string, string>();
      for (const step of steps) {
        const at = clock.advance(1_000).toISOString();
        if (!entered.has(step.phase)) entered.set(step.phase, at);
        const outcome = await store.transition('life', step);
        assert.ok(outcome.ok, step.phase);
        assert.equal(outcome.record.updatedAt, at);
      }
      const record = await store.get('life');
      assert.deepEqual(record?.state, { phase: 'Terminated', exitCode: 0 });
      assert.equal(record?.timestamps.Running, entered.get('Running'));
      assert.equal(record?.timestamps.Starting, entered.get('Starting'));
      assert.equal(record?.finishedAt, entered.get('Terminated'));
      assert.equal(record?.revision, steps.length + 1);
      assert.deepEqual(record?.history.map((h) => h.to), steps.map((s) => s.phase));
      assert.equal(record?.history[4]?.reason, 'HealthCheckFailed');
    });

    it('ends a record the host decided to end as Failed with the host\'s reason, whoever reports the end, and takes later reports as repeats', async () => {
      await store.create(newWorker('ended-by-host', { state: { phase: 'Running' }, startTimeoutMs: 60_000 }));
      const at = clock.now().toISOString();
      const decided = await store.update('ended-by-host', { desired: 'Terminated', ending: { reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 1000 ms', at } });
      assert.deepEqual(decided.ending, { reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 1000 ms', at });
      assert.equal(decided.startTimeoutMs, 60_000);
      // Stopping, as the host writes it or as a provider reports it without a reason, carries the host's reason.
      const stopping = await store.transition('ended-by-host', { phase: 'Stopping' });
      assert.ok(stopping.ok && stopping.changed);
      assert.deepEqual(stopping.record.state, { phase: 'Stopping', reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 1000 ms' });
      assert.ok((await store.transition('ended-by-host', { phase: 'Stopping' })).ok);
      assert.equal((await store.get('ended-by-host'))?.revision, stopping.record.revision, 'a provider\'s Stopping after the host\'s is a repeat');
      const stillRunning = await store.transition('ended-by-host', { phase: 'Running' });
      assert.ok(stillRunning.ok && !stillRunning.changed, 'a late report that it runs is no news: not applied, not refused');
      // The provider's account of the stop the host asked for: Terminated with the exit code of a SIGTERM death.
      const ended = await store.transition('ended-by-host', { phase: 'Terminated', exitCode: 143 });
      assert.ok(ended.ok && ended.changed);
      assert.deepEqual(ended.record.state, { phase: 'Failed', reason: 'DeadlineExceeded', message: 'ran past its timeoutMs of 1000 ms', exitCode: 143 });
      // Its own report of the same end, arriving later, is a repeat: nothing is written, nothing is refused.
      const late = await store.transition('ended-by-host', { phase: 'Failed', reason: 'DeadlineExceeded' });
      assert.ok(late.ok);
      assert.equal(late.changed, false);
      assert.equal((await store.get('ended-by-host'))?.revision, ended.record.revision);

      // A start timeout keeps the pending reason the worker was waiting on.
      await store.create(newWorker('never-started', { state: { phase: 'Starting', pendingReason: 'ImagePull' } }));
      await store.update('never-started', { desired: 'Terminated', ending: { reason: 'StartTimeout', pendingReason: 'ImagePull', at } });
      const lost = await store.transition('never-started', { phase: 'Failed', reason: 'Lost' });
      assert.ok(lost.ok);
      assert.deepEqual(lost.record.state, { phase: 'Failed', reason: 'StartTimeout', pendingReason: 'ImagePull' });
    });

    it('records the time the caller gives for a transition that happened earlier', async () => {
      await store.create(newWorker('late-event', { state: { phase: 'Running' } }));
      const happened = new Date(clock.now().getTime() - 60_000);
      const outcome = await store.transition('late-event', { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 }, { at: happened });
      assert.ok(outcome.ok);
      assert.equal(outcome.record.finishedAt, happened.toISOString());
      assert.equal(outcome.record.history[0]?.at, happened.toISOString());
      assert.equal(outcome.record.updatedAt, clock.now().toISOString());
    });

    it(`keeps the last ${HISTORY_LIMIT} transitions, in order, with the revision each was written at`, async () => {
      await store.create(newWorker('flappy', { state: { phase: 'Running' } }));
      const moves = HISTORY_LIMIT + 10;
      for (let i = 0; i < moves; i += 1) assert.ok((await store.transition('flappy', { phase: i % 2 === 0 ? 'Degraded' : 'Running' })).ok);
      const record = await store.get('flappy');
      assert.equal(record?.revision, moves + 1);
      assert.equal(record?.history.length, HISTORY_LIMIT);
      assert.deepEqual(record?.history.map((h) => h.revision), Array.from({ length: HISTORY_LIMIT }, (_, i) => moves + 2 - HISTORY_LIMIT + i));
      assert.equal(record?.history.at(-1)?.to, 'Running');
    });

    it('bumps the revision on every write, and refuses a write expecting an older revision', async () => {
      await store.create(newWorker('cas'));
      const a = await store.update('cas', { restartCount: 1 }, { expectedRevision: 1 });
      assert.equal(a.revision, 2);
      const b = await store.transition('cas', { phase: 'Creating' }, { expectedRevision: 2 });
      assert.ok(b.ok);
      assert.equal(b.record.revision, 3);
      await assert.rejects(store.update('cas', { restartCount: 9 }, { expectedRevision: 2 }), { code: 'HOST_ERR_WORKER_REVISION_CONFLICT' });
      await assert.rejects(store.transition('cas', { phase: 'Running' }, { expectedRevision: 1 }), { code: 'HOST_ERR_WORKER_REVISION_CONFLICT' });
      const stored = await store.get('cas');
      assert.equal(stored?.revision, 3);
      assert.equal(stored?.restartCount, 1);
      assert.equal(stored?.state.phase, 'Creating');
    });

    it('records the provider handle with a transition in one write, and a new handle alone without a history entry', async () => {
      await store.create(newWorker('ref'));
      const creating = await store.transition('ref', { phase: 'Creating' });
      assert.ok(creating.ok);
      const running = await store.transition('ref', { phase: 'Running' }, { providerRef: 'pid-1' });
      assert.ok(running.ok && running.changed);
      assert.equal(running.record.revision, creating.record.revision + 1, 'state and handle in one write');
      assert.equal(running.record.providerRef, 'pid-1');
      const same = await store.transition('ref', { phase: 'Running' }, { providerRef: 'pid-1' });
      assert.ok(same.ok && !same.changed, 'an exact repeat, handle included, writes nothing');
      const moved = await store.transition('ref', { phase: 'Running' }, { providerRef: 'pid-2' });
      assert.ok(moved.ok && moved.changed);
      assert.equal(moved.record.history.length, running.record.history.length, 'a new handle is not a transition');
      assert.equal((await store.get('ref'))?.providerRef, 'pid-2');
      await assert.rejects(store.transition('ref', { phase: 'Running' }, { providerRef: 'x'.repeat(600) }), { code: 'HOST_ERR_WORKER_RECORD_INVALID' });
    });

    it('loses no write when several writers change one record at once', async () => {
      await store.create(newWorker('contended', { state: { phase: 'Running' } }));
      const writers = 8;
      const outcomes = await Promise.all(Array.from({ length: writers }, (_, i) => store.transition('contended', { phase: 'Running', message: `probe ${i}` })));
      assert.ok(outcomes.every((o) => o.ok));
      const record = await store.get('contended');
      assert.equal(record?.revision, writers + 1);
      assert.deepEqual(record?.history.map((h) => h.revision), Array.from({ length: writers }, (_, i) => i + 2));
      assert.deepEqual(new Set(record?.history.map((h) => h.message)).size, writers);
    });

    it('changes only the named non-state fields; the instance only when named', async () => {
      await store.create(newWorker('patchy', { labels: { team: 'ci', tier: 'gold' } }));
      const next = await store.update('patchy', { labels: { team: 'web' }, stale: true, desired: 'Terminated', restartCount: 2 });
      assert.deepEqual([next.labels, next.stale, next.desired, next.restartCount, next.instance], [{ team: 'web' }, true, 'Terminated', 2, 'docker-1']);
      assert.equal((await store.update('patchy', { instance: 'docker-2' })).instance, 'docker-2');
      await assert.rejects(store.update('patchy', { state: { phase: 'Running' } } as never), { code: 'HOST_ERR_WORKER_RECORD_INVALID' });
      assert.deepEqual((await store.list({ selector: 'tier' })).items.map((r) => r.id), [], 'replaced labels must not match');
      assert.deepEqual((await store.list({ selector: 'team=web' })).items.map((r) => r.id), ['patchy']);
    });

    it('answers writes to a missing record with HOST_ERR_WORKER_RECORD_NOT_FOUND, and deletes', async () => {
      await assert.rejects(store.transition('nobody', { phase: 'Running' }), { code: 'HOST_ERR_WORKER_RECORD_NOT_FOUND' });
      await assert.rejects(store.update('nobody', { stale: true }), { code: 'HOST_ERR_WORKER_RECORD_NOT_FOUND' });
      assert.equal(await store.delete('nobody'), false);
      await store.create(newWorker('doomed', { labels: { doomed: 'yes' } }));
      assert.equal(await store.delete('doomed'), true);
      assert.equal(await store.get('doomed'), undefined);
      assert.deepEqual((await store.list({ selector: 'doomed' })).items, []);
      assert.equal((await store.create(newWorker('doomed'))).revision, 1, 'the id is free again');
    });

    it('purges terminal records finished before the cutoff, and nothing else', async () => {
      const purgeStore = await harness.open(clock.now);
      try {
        const make = async (id: string, phase: 'Running' | 'Terminated' | 'Failed') => {
          await purgeStore.create(newWorker(id, { labels: { purge: 'set' } }));
          if (phase !== 'Running') await purgeStore.transition(id, stateIn(phase));
        };
        clock.advance(1_000);
        await make('old-done', 'Terminated');
        await make('old-failed', 'Failed');
        await make('old-running', 'Running');
        const cutoff = clock.advance(1_000);
        await make('new-done', 'Terminated');
        assert.equal(await purgeStore.purgeFinished(cutoff), 2);
        const left = (await purgeStore.list({ selector: 'purge=set' })).items.map((r) => r.id);
        assert.deepEqual(left, ['old-running', 'new-done']);
        assert.equal(await purgeStore.purgeFinished(cutoff), 0);
      } finally {
        await purgeStore.close();
      }
    });

    it('counts records by instance and phase, following transitions, deletes and purges', async () => {
      const counted = await harness.open(clock.now);
      try {
        assert.deepEqual(await counted.countByPhase(), []);
        await counted.create(newWorker('c-1', { instance: 'a' }));
        await counted.create(newWorker('c-2', { instance: 'a', state: stateIn('Running') }));
        await counted.create(newWorker('c-3', { instance: 'a', state: stateIn('Running') }));
        await counted.create(newWorker('c-4', { instance: 'b', state: stateIn('Running') }));
        await counted.transition('c-3', stateIn('Failed'));
        await counted.delete('c-4');
        assert.deepEqual(await counted.countByPhase(), [
          { instance: 'a', phase: 'Failed', count: 1 },
          { instance: 'a', phase: 'Pending', count: 1 },
          { instance: 'a', phase: 'Running', count: 1 },
        ]);
        assert.equal(await counted.purgeFinished(new Date(clock.now().getTime() + 1)), 1);
        assert.deepEqual((await counted.countByPhase()).map((c) => `${c.instance}/${c.phase}=${c.count}`), ['a/Pending=1', 'a/Running=1']);
      } finally {
        await counted.close();
      }
    });

    it('refuses every call after close(), and closes twice without error', async () => {
      const closing = await harness.open(clock.now);
      await closing.create(newWorker('closing'));
      await closing.close();
      await closing.close();
      await assert.rejects(closing.get('closing'), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
      await assert.rejects(closing.list(), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
    });

    idempotencySuite(harness, clock);
    listingSuite(harness);
  });
}
