import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { PluginLogger, WorkerEvent } from '@worker-manager/plugin-sdk';
import { PendingCancelled, PendingCreates, PendingSuperseded, type MaterializeHooks } from '../../../plugins/docker/src/PendingCreates.ts';
import { PendingStore, type PendingMarker } from '../../../plugins/docker/src/PendingStore.ts';
import { waitFor } from '../../helpers/waitFor.ts';

/**
 * The decisions of a background create that depend on what other threads did to its marker, taken on real marker
 * and lease files. The engine steps (pull, make the container) are gates the test opens, so each decision is reached
 * at a known point; the Docker-level behaviour is in imagePull.test.ts.
 */

interface Step {
  /** Resolves when the step has begun. */
  readonly begun: Promise<void>;
  /** Lets the step finish. */
  release(): void;
}

function gate(): Step & { enter(signal?: AbortSignal): Promise<void> } {
  let begin!: () => void;
  let open!: () => void;
  const begun = new Promise<void>((resolve) => (begin = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    begun,
    release: () => open(),
    enter(signal) {
      begin();
      return new Promise<void>((resolve, reject) => {
        signal?.addEventListener('abort', () => reject(new Error('pull aborted')), { once: true });
        void opened.then(resolve);
      });
    },
  };
}

interface Thread {
  creates: PendingCreates;
  events: WorkerEvent[];
  logs: string[];
  pull: ReturnType<typeof gate>;
  make: ReturnType<typeof gate>;
  /** What each materialize call's final checkpoint said: `made`, or the error it threw. */
  outcomes: string[];
  /** Pulls begun. */
  readonly pulls: number;
}

/** One plugin thread's PendingCreates on the shared folder; a long beat, so only the test moves things. */
function thread(t: TestContext, dir: string, staleMs: number): Thread {
  const events: WorkerEvent[] = [];
  const logs: string[] = [];
  const outcomes: string[] = [];
  const pull = gate();
  const make = gate();
  let pulls = 0;
  const log = (message: string): void => void logs.push(message);
  const logger: PluginLogger = { debug: log, info: log, warn: log, error: log };
  const creates = new PendingCreates({
    store: new PendingStore(dir, staleMs),
    beatMs: 3_600_000,
    logger,
    emit: (e) => events.push(e),
    needsPull: async () => true,
    pull: (_image, _workerId, _auth, signal) => {
      pulls++;
      return pull.enter(signal);
    },
    async materialize(_marker: PendingMarker, _secrets, hooks: MaterializeHooks) {
      hooks.checkpoint();
      await make.enter();
      try {
        hooks.checkpoint();
      } catch (error) {
        outcomes.push(error instanceof PendingCancelled ? 'cancelled' : error instanceof PendingSuperseded ? 'superseded' : String(error));
        throw error;
      }
      outcomes.push('made');
      hooks.created('container-1');
      return { containerId: 'container-1', state: { phase: 'Running' } };
    },
  });
  t.after(() => creates.close());
  return {
    creates,
    events,
    logs,
    pull,
    make,
    outcomes,
    get pulls() {
      return pulls;
    },
  };
}

const marker = (workerId: string): PendingMarker => ({
  version: 1,
  token: randomUUID(),
  workerId,
  specHash: 'h',
  spec: { image: 'registry.test/x:1' },
  image: 'registry.test/x:1',
  epoch: '1',
  createdAt: new Date().toISOString(),
  labels: {},
  resources: {},
  secretNames: [],
  registryAuth: false,
  pendingReason: 'ImagePull',
  attempts: 1,
});

async function folder(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-pending-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('docker provider: background creates and the threads around them', () => {
  it('a terminate while the container is being made: the task undoes it (cancelled), and reports nothing', async (t) => {
    const dir = await folder(t);
    const a = thread(t, dir, 60_000);
    const b = thread(t, dir, 60_000);
    assert.equal(a.creates.accept(marker('w1'), [], undefined), true);
    await a.pull.begun;
    a.pull.release();
    await a.make.begun;
    assert.equal(b.creates.cancel('w1')?.workerId, 'w1', 'terminate on another thread finds the marker');
    a.make.release();
    await waitFor(() => a.outcomes.length === 1, 'the task to pass its checkpoint');
    assert.deepEqual(a.outcomes, ['cancelled']);
    await waitFor(() => a.logs.includes('docker provider: pending create cancelled'), 'the task to stop');
    assert.deepEqual(a.events.map((e) => e.type === 'WorkerStateChanged' && e.newState), [{ phase: 'Starting', pendingReason: 'ContainerCreating' }], 'no WorkerCreated, no failure');
    assert.equal(b.creates.read('w1'), undefined);
  });

  it('a stalled task whose lease was taken over keeps what it made and leaves the new attempt alone (superseded)', async (t) => {
    const dir = await folder(t);
    // A lease stale at once: as if thread a had not renewed it for longer than the stale time.
    const a = thread(t, dir, 1);
    const b = thread(t, dir, 1);
    assert.equal(a.creates.accept(marker('w2'), [], undefined), true);
    await a.pull.begun;
    a.pull.release();
    await a.make.begun;
    // Thread b's sweep takes the create over under a new attempt token, and finishes it first.
    await waitFor(() => {
      b.creates.sweep();
      return b.creates.read('w2')?.attempts === 2;
    }, 'thread b to resume the create');
    // Thread a had pulled the image (the marker says ContainerCreating): b goes straight to the container.
    await b.make.begun;
    assert.equal(b.pulls, 0, 'the resumed attempt does not pull again');
    b.make.release();
    await waitFor(() => b.outcomes.length === 1, 'thread b to make the container');
    assert.deepEqual(b.outcomes, ['made']);
    await waitFor(() => b.creates.read('w2') === undefined, 'thread b to finish the create');
    // Thread a wakes up: the marker is gone, but no terminate removed it, so what a made is not undone.
    a.make.release();
    await waitFor(() => a.outcomes.length === 1, 'thread a to pass its checkpoint');
    assert.deepEqual(a.outcomes, ['superseded']);
    await waitFor(() => a.logs.includes('docker provider: another thread carries on a pending create'), 'thread a to stop');
    assert.ok(!a.events.some((e) => e.type === 'WorkerCreated' || e.type === 'WorkerFailed'), 'the stalled thread reports nothing');
    assert.deepEqual(
      b.events.map((e) => (e.type === 'WorkerStateChanged' ? e.newState.phase : e.type)),
      ['WorkerCreated', 'Running'],
      'the attempt that made the worker reports it (the pull was reported by the stalled one)',
    );
  });

  it('a task taken over while pulling stops at the pull and never writes to the new attempt', async (t) => {
    const dir = await folder(t);
    const a = thread(t, dir, 1);
    const b = thread(t, dir, 1);
    assert.equal(a.creates.accept(marker('w3'), [], undefined), true);
    await a.pull.begun;
    await waitFor(() => {
      b.creates.sweep();
      return b.creates.read('w3')?.attempts === 2;
    }, 'thread b to resume the create');
    const token = b.creates.read('w3')?.token;
    a.pull.release();
    await waitFor(() => a.logs.includes('docker provider: another thread carries on a pending create'), 'thread a to stop');
    assert.deepEqual(a.outcomes, [], 'thread a made nothing');
    assert.equal(b.creates.read('w3')?.token, token, 'the marker is still the new attempt');
    assert.equal(b.creates.read('w3')?.pendingReason, 'ImagePull', 'thread a did not move it on');
  });
});
