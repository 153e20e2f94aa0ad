import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { fixturePlugin, startTestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// A create whose plugin thread is killed mid-call, after the provider made the worker, must not leave a worker the
// ledger does not know. Regression: 71 of 109 creates answered 503 had started a worker, and DELETE on such a worker
// answered `alreadyGone`. The fixture's workers are real `sleep` processes found by their environment, so they
// outlive the thread that made them, as real infrastructure does.

/** Live (not zombie) processes whose environment names this worker and this test's state dir. */
async function liveProcessesOf(workerId: string, owner: string): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = (await readFile(`/proc/${entry}/environ`, 'utf8')).split('\0');
      if (!env.includes(`WM_WORKER_ID=${workerId}`) || !env.some((e) => e.startsWith('FIXTURE_OWNER=') && e.startsWith(`FIXTURE_OWNER=${owner}`))) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') out.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

describe('a create whose plugin thread dies mid-call', { timeout: budget(180_000) }, () => {
  it('is recorded Failed(CreateFailed), the worker it made is terminated, and the instance serves the next create', async (t) => {
    // A short call deadline so the test does not wait 30 s; the start deadline stays generous for a loaded machine.
    const h = await startTestHost(`
host: { id: h-create-faults, stateDir: \${DIR}/state }
plugins:
  - name: sth
    package: ${fixturePlugin('spawn-then-hang')}
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
    limits: { callTimeoutMs: ${budget(2_000)}, heartbeatMs: 100, hangTimeoutMs: ${budget(2_000)} }
instances:
  - { name: s, plugin: sth, default: true }
`);
    const owner = h.host.registry.instance('s').stateDir ?? '';
    assert.notEqual(owner, '');
    t.after(async () => {
      for (const id of ['hang-1', 'ok-1']) for (const pid of await liveProcessesOf(id, owner)) process.kill(pid, 'SIGKILL');
      await h.stop();
    });

    const failure = await h.host.workers.createWorker({ workerId: 'hang-1', spec: { labels: { hang: 'yes' } }, idempotencyKey: 'k-hang' }).then(
      () => assert.fail('the create answered although its thread was blocked'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof WorkerManagerError, String(failure));
    assert.ok(['HOST_ERR_PLUGIN_TIMEOUT', 'HOST_ERR_PLUGIN_HUNG', 'HOST_ERR_PLUGIN_CRASHED'].includes(failure.code), `${failure.code}: ${failure.message}`);

    const record = await h.host.ledger.store.get('hang-1');
    assert.equal(record?.state.phase, 'Failed');
    assert.equal(record?.state.reason, 'CreateFailed');
    // The worker the dead thread made is gone: the host terminated it through the replacement thread.
    await waitFor(async () => (await liveProcessesOf('hang-1', owner)).length === 0, () => `the worker made by the killed thread to be terminated; logs:\n${h.logs.filter((l) => /clean up|hang-1|restart/.test(l)).join('\n')}`);

    // The instance got a new thread and serves the next create; that worker is the only one left running.
    const ok = await h.host.workers.createWorker({ workerId: 'ok-1', spec: {} });
    assert.equal(ok.worker.state.phase, 'Running');
    assert.equal((await liveProcessesOf('ok-1', owner)).length, 1);
    assert.equal((await h.host.ledger.store.get('ok-1'))?.state.phase, 'Running');
  });
});
