import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { collectOutput, finished } from '../helpers/childProcess.ts';

const KUBE_SCRIPT = fileURLToPath(new URL('../../.ci/kube', import.meta.url));
/** `up` waits up to 180 s for the apiserver and 120 s for each controller on a loaded machine; `down` 10 s a component. */
const UP_MS = 600_000;
const APISERVER_MS = 240_000;
const DOWN_MS = 120_000;

/**
 * A control plane of a test's own: `.ci/kube up` in a temporary WM_KUBE_DIR on free ports, with the cached binaries.
 * For fault tests that stop the apiserver, which the shared cluster of `.ci/kube up` must never see (other test files
 * use it meanwhile).
 */
export interface PrivateCluster {
  /** Its WM_KUBE_DIR: kubeconfig, pki/ (the agent's `kubeDir`), run/*.log. */
  readonly dir: string;
  /** Its admin kubeconfig. */
  readonly kubeConfig: KubeConfig;
  /** Stops the apiserver alone (`.ci/kube apiserver-stop`); etcd and the controllers keep running. */
  stopApiserver(): Promise<void>;
  /** Starts it again and waits until it is ready (`.ci/kube apiserver-start`; a no-op when it runs). */
  startApiserver(): Promise<void>;
  /** Stops every component (`.ci/kube down` in its folder only) and removes the folder. Safe to call twice. */
  close(): Promise<void>;
}

/** Ports nothing listens on now, all different: held open together so the kernel cannot hand out one twice. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export async function startPrivateCluster(prefix: string): Promise<PrivateCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  const [apiserver, etcd, etcdPeer, cm, scheduler] = await freePorts(5);
  // Every variable `.ci/kube` reads is set here, so none the caller exported can point it at the shared cluster.
  const env = {
    ...process.env,
    WM_KUBE_DIR: dir,
    WM_KUBE_APISERVER_PORT: String(apiserver),
    WM_KUBE_ETCD_PORT: String(etcd),
    WM_KUBE_ETCD_PEER_PORT: String(etcdPeer),
    WM_KUBE_CM_PORT: String(cm),
    WM_KUBE_SCHEDULER_PORT: String(scheduler),
  };
  const kube = async (command: string, budgetMs: number): Promise<void> => {
    const child = spawn('bash', [KUBE_SCRIPT, command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const run = await finished(child, `.ci/kube ${command} (WM_KUBE_DIR=${dir})`, collectOutput(child), budgetMs);
    if (run.code !== 0) throw new Error(`.ci/kube ${command} (WM_KUBE_DIR=${dir}) exited with ${run.code ?? run.signal}: ${run.stderr}${run.stdout}`);
  };
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    try {
      await kube('down', DOWN_MS);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    await kube('up', UP_MS);
  } catch (error) {
    await close();
    throw error;
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path.join(dir, 'kubeconfig'));
  return {
    dir,
    kubeConfig,
    stopApiserver: () => kube('apiserver-stop', DOWN_MS),
    startApiserver: () => kube('apiserver-start', APISERVER_MS),
    close,
  };
}
