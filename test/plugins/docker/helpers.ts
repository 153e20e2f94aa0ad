import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import Docker from 'dockerode';
import plugin from '@worker-manager/plugin-docker';
import type { RuntimeSpec, WorkerState } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { waitFor } from '../../helpers/waitFor.ts';

export const IMAGE = 'local/busybox:latest';
export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** A fresh host id: every test owns what carries it, and nothing else. */
export const newHostId = (tag: string): string => `t-${tag}-${randomBytes(3).toString('hex')}`;

/** A container that prints `marker` and keeps running (600 s: longer than a test on a loaded machine; removed by labels). */
export const longSpec = (marker: string, extra: Partial<RuntimeSpec> = {}): RuntimeSpec => ({
  image: IMAGE,
  command: ['sh', '-c', `echo ${marker}; exec sleep 600`],
  ...extra,
});

/** Secret folders of test hosts live here, not in the shared default. */
export const secretsRoot = '/dev/shm/wm-docker-tests';

/**
 * Removes every container, network and volume labelled with this host id, and its secret folders: the cleanup a
 * test registers first, so it runs even when the test fails halfway.
 */
export async function removeOwned(hostId: string): Promise<void> {
  const label = [`worker-manager/host=${hostId}`];
  const containers = await docker.listContainers({ all: true, filters: { label } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  const networks = await docker.listNetworks({ filters: { label } });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => {})));
  const volumes = await docker.listVolumes({ filters: { label } });
  await Promise.all((volumes.Volumes ?? []).map((v) => docker.getVolume(v.Name).remove({ force: true }).catch(() => {})));
  const folders = await readdir(secretsRoot).catch(() => [] as string[]);
  await Promise.all(folders.filter((f) => f.startsWith(`wm-${hostId}-`)).map((f) => rm(`${secretsRoot}/${f}`, { recursive: true, force: true })));
}

/** Counts what the engine still holds for a host id. */
export async function ownedCounts(hostId: string): Promise<{ containers: number; networks: number; volumes: number }> {
  const label = [`worker-manager/host=${hostId}`];
  const [c, n, v] = await Promise.all([
    docker.listContainers({ all: true, filters: { label } }),
    docker.listNetworks({ filters: { label } }),
    docker.listVolumes({ filters: { label } }),
  ]);
  return { containers: c.length, networks: n.length, volumes: (v.Volumes ?? []).length };
}

/** A harness for the docker plugin under its own host id, closed and cleaned up (by labels) when the test ends. */
export async function openHarness(
  t: TestContext,
  config: Record<string, unknown> = {},
  options: { hostId?: string; stateDir?: string } = {},
): Promise<PluginHarness<'provider'> & { hostId: string }> {
  const hostId = options.hostId ?? newHostId('h');
  t.after(() => removeOwned(hostId));
  const h = await createPluginHarness(plugin, {
    config: { secretsDir: secretsRoot, defaultGracePeriodMs: 1_000, ...config },
    hostId,
    ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }),
  });
  t.after(() => h.close());
  return Object.assign(h, { hostId });
}

/** Waits until the worker is in a final state and returns it. */
export function finalState(h: PluginHarness<'provider'>, workerId: string, timeoutMs?: number): Promise<WorkerState> {
  return waitFor(async () => {
    const s = await h.proxy.getWorkerStatus({ workerId });
    return s.phase === 'Terminated' || s.phase === 'Failed' ? s : undefined;
  }, `${workerId} to end`, timeoutMs);
}

/** `docker inspect` of the worker's container (by the id the provider reported). */
export function inspect(providerRef: string | undefined): Promise<Docker.ContainerInspectInfo> {
  if (providerRef === undefined) throw new Error('no providerRef');
  return docker.getContainer(providerRef).inspect();
}

/**
 * A barrier on the engine's event stream: creates a worker that ends at once and waits for its WorkerTerminated. The
 * plugin reports engine events in order, so anything the engine said about an earlier container has been reported
 * by then: a test checks that something did NOT happen (a second event) after this, not after a fixed sleep.
 */
export async function eventBarrier(h: PluginHarness<'provider'>, workerId: string): Promise<void> {
  await h.proxy.createWorker({ workerId, spec: { image: IMAGE, command: ['true'] } });
  await waitFor(() => h.events.some((e) => e.workerId === workerId && e.type === 'WorkerTerminated'), `the WorkerTerminated of barrier worker ${workerId}`);
}

/** All log text of a worker. */
export async function logText(h: PluginHarness<'provider'>, workerId: string): Promise<string> {
  let text = '';
  for await (const chunk of await h.proxy.getLogs({ workerId })) text += chunk.data;
  return text;
}

export { waitFor };
