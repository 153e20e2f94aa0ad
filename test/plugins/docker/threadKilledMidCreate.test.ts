import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import type { RuntimeSpec, SecretMount } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { budget, within } from '../../helpers/waitFor.ts';
import { docker, IMAGE, newHostId, openHarness, removeOwned, secretsRoot, waitFor } from './helpers.ts';

const skip = await requireDocker();
const COUNT = 20;

describe('docker provider: a plugin thread killed while creating 20 workers', { skip }, () => {
  it('leaves no unowned resource: every container is listed, and cleanup removes whatever no listed worker claims', { timeout: budget(180_000) }, async (t) => {
    const hostId = newHostId('kill');
    t.after(() => removeOwned(hostId));
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'wm-docker-kill-'));
    t.after(() => rm(stateDir, { recursive: true, force: true }));
    const config = { secretsDir: secretsRoot, abandonedCreateMs: 500, leaseStaleMs: 1_000, cleanupIntervalMs: 500 };
    // Every third worker has its own network (Strict) and every other one a secret folder: each kind of resource
    // a dying create can leave behind.
    const workers = Array.from({ length: COUNT }, (_, i) => {
      const spec: RuntimeSpec = { image: IMAGE, command: ['sleep', '600'], resources: { memoryMiB: 16 } };
      if (i % 3 === 0) spec.network = { type: 'Isolated', isolation: 'Strict' };
      const secrets: SecretMount[] = i % 2 === 0 ? [{ strategy: 'file', name: 's', version: '1', path: 'token', value: `v${i}` }] : [];
      return { workerId: `k${i}`, spec, secrets };
    });

    const thread = new Thread(new URL('./fixtures/tsWorker.mjs', import.meta.url), {
      workerData: { entry: new URL('./fixtures/createManyThread.ts', import.meta.url).href, stateDir, hostId, config, workers },
    });
    let created = 0;
    thread.on('message', (m: string) => {
      if (m.startsWith('created:')) created++;
    });
    // The thread compiles the plugin first: seconds, far more on a loaded machine.
    await within(
      new Promise<void>((resolve, reject) => {
        thread.on('message', (m) => m === 'creating' && resolve());
        thread.once('error', reject);
      }),
      'the plugin thread to start creating',
      90_000,
    );
    // Kill it mid-flight: once the engine holds a few of its containers, well before all 20 are up.
    await waitFor(async () => ((await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${hostId}`] } })).length >= 3 ? true : undefined), 'the first containers', 60_000);
    await thread.terminate();
    const atKill = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${hostId}`] } });
    t.diagnostic(`killed after ${created} creates returned; ${atKill.length} containers existed (${atKill.filter((c) => c.State === 'created').length} never started)`);
    assert.ok(created < COUNT, 'the thread died before finishing');

    // A new plugin thread on the same instance takes over (events lease, then cleanup).
    const h = await openHarness(t, config, { hostId, stateDir });
    const invariant = async (): Promise<true | undefined> => {
      const listed = new Set((await h.proxy.listWorkers({})).map((w) => w.workerId));
      const label = [`worker-manager/host=${hostId}`];
      const containers = await docker.listContainers({ all: true, filters: { label } });
      const incarnations = new Set(containers.map((c) => `${c.Labels['worker-manager/worker-id']}.${c.Labels['worker-manager/epoch']}`));
      if (!containers.every((c) => listed.has(c.Labels['worker-manager/worker-id'] ?? ''))) return undefined;
      if (containers.some((c) => c.State === 'created')) return undefined;
      const networks = await docker.listNetworks({ filters: { label } });
      if (networks.some((n) => n.Labels?.['worker-manager/worker-id'] !== undefined && !listed.has(n.Labels['worker-manager/worker-id']))) return undefined;
      const folders = await readdir(path.join(secretsRoot, `wm-${hostId}-test`)).catch(() => [] as string[]);
      if (folders.some((f) => !incarnations.has(f))) return undefined;
      return true;
    };
    await waitFor(invariant, 'listWorkers + cleanup to account for every resource', 60_000);

    // Everything listed can be terminated, after which only the instance network remains.
    await Promise.all((await h.proxy.listWorkers({})).map((w) => h.proxy.terminateWorker({ workerId: w.workerId, gracePeriodMs: 0 })));
    const label = [`worker-manager/host=${hostId}`];
    await waitFor(async () => (await docker.listContainers({ all: true, filters: { label } })).length === 0, 'every container removed');
    const left = await docker.listNetworks({ filters: { label } });
    assert.deepEqual(left.map((n) => n.Name), [`wm-${hostId}-test`]);
    assert.deepEqual(await readdir(path.join(secretsRoot, `wm-${hostId}-test`)).catch(() => []), []);
  });
});
