import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import plugin from '@worker-manager/plugin-docker';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { docker, IMAGE, inspect, newHostId, removeOwned, secretsRoot } from './helpers.ts';

const skip = await requireDocker();

// Regression: with `threads: 2` (config/examples/docker.yaml) the threads raced on their first creates, each found no
// instance network, each made one, and the engine kept both under one name; from then on every Default-isolation
// create failed with 400 "network ... is ambiguous", across restarts (4 of 15 fresh starts).

/** Plugin "threads" raced against each other in every round: separate provider instances on one state dir. */
const THREADS = 4;
/** Concurrent creates per thread in a round. */
const CREATES_PER_THREAD = 2;
/** Fresh engine states raced (each one network, made and removed: the engine's address pools are shared). */
const ROUNDS = 6;

/** The networks the engine holds under exactly this name (its name filter matches substrings). */
async function networksNamed(name: string): Promise<Array<{ Id: string; Name: string }>> {
  return (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
}

/** `threads` harnesses of one instance (same host id, instance and state dir), all ready before any call. */
async function threadsOf(t: TestContext, hostId: string, threads: number): Promise<Array<PluginHarness<'provider'>>> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'wm-docker-netrace-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  t.after(() => removeOwned(hostId));
  const harnesses = await Promise.all(
    Array.from({ length: threads }, () => createPluginHarness(plugin, { config: { secretsDir: secretsRoot, defaultGracePeriodMs: 0 }, hostId, stateDir })),
  );
  // Closed before the labelled resources are removed (after() runs last-registered first).
  t.after(() => Promise.all(harnesses.map((h) => h.close())));
  return harnesses;
}

describe('docker provider: one instance network, whatever the threads do', { skip, timeout: budget(600_000) }, () => {
  it(`${THREADS} threads racing ${CREATES_PER_THREAD} Default creates each on a fresh engine state never leave two networks of one name (${ROUNDS} rounds)`, async (t) => {
    for (let round = 0; round < ROUNDS; round++) {
      const hostId = newHostId(`netrace${round}`);
      const name = `wm-${hostId}-test`;
      try {
        const threads = await threadsOf(t, hostId, THREADS);
        // Every thread is set up before the first call: the creates start together, as after a host start.
        const results = await Promise.allSettled(
          threads.flatMap((h, i) =>
            Array.from({ length: CREATES_PER_THREAD }, (_, k) => h.proxy.createWorker({ workerId: `r${round}-t${i}-w${k}`, spec: { image: IMAGE, command: ['sleep', '600'] } })),
          ),
        );
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []));
        assert.deepEqual(failed, [], `round ${round}: every create succeeds`);
        const nets = await networksNamed(name);
        assert.equal(nets.length, 1, `round ${round}: one network named ${name}, found ${nets.length}`);
        for (const r of results) {
          if (r.status !== 'fulfilled') continue;
          const attached = Object.keys((await inspect(r.value.providerRef)).NetworkSettings.Networks);
          assert.deepEqual(attached, [name], `round ${round}: ${r.value.workerId} is on the instance network`);
        }
        // A later create (any thread) still finds the network by its name.
        const later = await threads[round % THREADS]!.proxy.createWorker({ workerId: `r${round}-later`, spec: { image: IMAGE, command: ['sleep', '600'] } });
        assert.equal(later.state.phase, 'Running');
        const logged = threads.flatMap((h) => h.logs.map((l) => l.message));
        t.diagnostic(
          `round ${round}: ${logged.filter((m) => m.includes('second network of the same name')).length} duplicate(s) removed, ` +
            `${logged.filter((m) => m.includes('looking it up again')).length} create(s) repeated after the network changed`,
        );
      } finally {
        // Each round gives its network back at once: the engine's address pools are shared with every other test.
        await removeOwned(hostId);
      }
    }
  });

  it('an engine state that already has two networks of the instance name (left by an older version) is repaired when a thread starts', async (t) => {
    const hostId = newHostId('netdup');
    const name = `wm-${hostId}-test`;
    t.after(() => removeOwned(hostId));
    const labels = { 'worker-manager/host': hostId, 'worker-manager/instance': 'test', 'worker-manager/kind': 'network' };
    // What the race left: two bridge networks of one name, made without the engine's duplicate check.
    for (let i = 0; i < 2; i++) await docker.createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: false, Labels: labels });
    // A per-worker (Strict) network left twice as well: its worker's container joined the first, then the race made
    // the second (once there are two, no container can join the name).
    const strictName = `${name}-kept`;
    const strictLabels = { ...labels, 'worker-manager/worker-id': 'kept', 'worker-manager/epoch': '1' };
    const strictA = await docker.createNetwork({ Name: strictName, Driver: 'bridge', Internal: true, CheckDuplicate: false, Labels: strictLabels });
    const kept = await docker.createContainer({
      name: `${name}-kept`,
      Image: IMAGE,
      Cmd: ['sleep', '600'],
      Labels: { ...labels, 'worker-manager/kind': 'worker', 'worker-manager/worker-id': 'kept', 'worker-manager/epoch': '1' },
      HostConfig: { NetworkMode: strictName, Init: true },
    });
    await kept.start();
    await docker.createNetwork({ Name: strictName, Driver: 'bridge', Internal: true, CheckDuplicate: false, Labels: strictLabels });
    assert.equal((await networksNamed(name)).length, 2);
    assert.equal((await networksNamed(strictName)).length, 2);

    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'wm-docker-netdup-'));
    t.after(() => rm(stateDir, { recursive: true, force: true }));
    const h = await createPluginHarness(plugin, { config: { secretsDir: secretsRoot, defaultGracePeriodMs: 0 }, hostId, stateDir });
    t.after(() => h.close());
    // No call needed: the thread that takes the events lease repairs what it finds.
    await waitFor(async () => (await networksNamed(name)).length === 1, `the duplicates of ${name} to be removed`);
    await waitFor(async () => (await networksNamed(strictName)).length === 1, `the duplicates of ${strictName} to be removed`);
    assert.deepEqual((await networksNamed(strictName)).map((n) => n.Id), [strictA.id], 'the network the worker uses is the one kept');
    const w = await h.proxy.createWorker({ workerId: 'after', spec: { image: IMAGE, command: ['sleep', '600'] } });
    assert.equal(w.state.phase, 'Running', 'a Default create works again');
    assert.deepEqual(Object.keys((await inspect(w.providerRef)).NetworkSettings.Networks), [name]);
  });
});
