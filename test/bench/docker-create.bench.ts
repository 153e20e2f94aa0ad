/**
 * docker-create: a Docker worker created until Running and then terminated through the host (registry, sandbox
 * thread, typed proxy, validation, the docker plugin) against raw dockerode calls doing the same engine work in the
 * same run: same image, command, limits, security options and network; create + start + inspect, then stop + remove.
 * Subjects alternate so that machine noise hits both alike. Sequential latency (medians, p95) and throughput with
 * CONCURRENCY workers in flight.
 */
import Docker from 'dockerode';
import type { Proxied, WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { repoRoot, startTestHost } from '../helpers/startTestHost.ts';

const IMAGE = 'local/busybox:latest';
const WARMUP = 3;
const SEQUENTIAL = 15;
const CONCURRENCY = 10;
const THROUGHPUT_WORKERS = 30;
const GRACE_MS = 2_000;
/** Between two status reads of a worker its create answered before it ran. */
const POLL_MS = 2;
const hostId = `bench-${process.pid}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

const t = await startTestHost(`
host: { id: ${hostId}, stateDir: \${DIR}/state, logLevel: warn }
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
instances:
  - name: bench
    plugin: docker
    default: true
    config: { secretsDir: /dev/shm/wm-docker-bench }
`);
const provider = t.host.registry.provider('bench') as Proxied<WorkerProviderContract>;
const network = `wm-${hostId}-bench`;
const spec = { image: IMAGE, command: ['sleep', '30'], resources: { memoryMiB: 64, cpuMillicores: 100 } };

let seq = 0;
interface Cycle {
  createMs: number;
  terminateMs: number;
}

async function viaHost(): Promise<Cycle> {
  const workerId = `h${(seq++).toString(36)}`;
  const a = performance.now();
  const w = await provider.createWorker({ workerId, spec });
  // Contract 2: createWorker may answer once the engine accepted the worker (Creating, Starting); Running is asked for
  // then, as the raw path's inspect does.
  let state = w.state;
  while (state.phase === 'Creating' || state.phase === 'Starting') {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    state = await provider.getWorkerStatus({ workerId });
  }
  if (state.phase !== 'Running') throw new Error(`worker is ${state.phase}`);
  const b = performance.now();
  await provider.terminateWorker({ workerId, gracePeriodMs: GRACE_MS });
  return { createMs: b - a, terminateMs: performance.now() - b };
}

async function viaDockerode(): Promise<Cycle> {
  const name = `wm-bench-raw-${process.pid}-${(seq++).toString(36)}`;
  const a = performance.now();
  const c = await docker.createContainer({
    name,
    Image: IMAGE,
    Entrypoint: spec.command,
    Labels: { 'worker-manager/host': hostId, 'worker-manager/instance': 'raw' },
    HostConfig: {
      Memory: 64 * 1024 * 1024,
      MemorySwap: 64 * 1024 * 1024,
      NanoCpus: 100_000_000,
      PidsLimit: 1_024,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Init: true,
      NetworkMode: network,
    },
  });
  await c.start();
  const info = await c.inspect();
  if (!info.State.Running) throw new Error('raw container is not running');
  const b = performance.now();
  await c.stop({ t: GRACE_MS / 1_000 });
  await c.remove({ force: true, v: true });
  return { createMs: b - a, terminateMs: performance.now() - b };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
};
const round = (n: number, d = 1): number => Number(n.toFixed(d));

async function throughput(subject: () => Promise<Cycle>): Promise<number> {
  let issued = 0;
  const start = performance.now();
  const lane = async (): Promise<void> => {
    while (issued < THROUGHPUT_WORKERS) {
      issued++;
      await subject();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
  return THROUGHPUT_WORKERS / ((performance.now() - start) / 1_000);
}

const lines: string[] = [];
let headline = '';
try {
  for (let i = 0; i < WARMUP; i++) {
    await viaHost();
    await viaDockerode();
  }
  const host: Cycle[] = [];
  const raw: Cycle[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    // Alternate which goes first so that neither always follows the other's teardown.
    if (i % 2 === 0) {
      host.push(await viaHost());
      raw.push(await viaDockerode());
    } else {
      raw.push(await viaDockerode());
      host.push(await viaHost());
    }
  }
  for (const key of ['createMs', 'terminateMs'] as const) {
    const h = host.map((c) => c[key]);
    const r = raw.map((c) => c[key]);
    const what = key === 'createMs' ? 'create-to-Running' : 'terminate';
    console.log(`${what}: host p50 ${round(pct(h, 0.5))} ms p95 ${round(pct(h, 0.95))} ms | raw dockerode p50 ${round(pct(r, 0.5))} ms p95 ${round(pct(r, 0.95))} ms | ratio p50 ${(pct(h, 0.5) / pct(r, 0.5)).toFixed(2)}`);
    lines.push(JSON.stringify({ bench: 'docker-create', metric: `p50_ms:${what}`, value: round(pct(h, 0.5)), baseline: round(pct(r, 0.5)), ratio: round(pct(h, 0.5) / pct(r, 0.5), 2), unit: 'ms' }));
  }
  const cycleH = host.map((c) => c.createMs + c.terminateMs);
  const cycleR = raw.map((c) => c.createMs + c.terminateMs);
  headline = JSON.stringify({ bench: 'docker-create', metric: 'p50_ms:create+terminate', value: round(pct(cycleH, 0.5)), baseline: round(pct(cycleR, 0.5)), ratio: round(pct(cycleH, 0.5) / pct(cycleR, 0.5), 2), unit: 'ms' });
  const hostRate = await throughput(viaHost);
  const rawRate = await throughput(viaDockerode);
  const hostRate2 = await throughput(viaHost);
  const rawRate2 = await throughput(viaDockerode);
  const h = Math.max(hostRate, hostRate2);
  const r = Math.max(rawRate, rawRate2);
  console.log(`throughput with ${CONCURRENCY} in flight (create, Running, terminate): host ${h.toFixed(2)} workers/s | raw dockerode ${r.toFixed(2)} workers/s | ratio ${(h / r).toFixed(2)}`);
  lines.push(JSON.stringify({ bench: 'docker-create', metric: `workers_per_s:c${CONCURRENCY}`, value: round(h, 2), baseline: round(r, 2), ratio: round(h / r, 2), unit: 'workers/s' }));
} finally {
  await t.stop();
  const left = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${hostId}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  // A container still being removed keeps the network busy for a moment.
  for (let i = 0; i < 20; i++) {
    const removed = await docker.getNetwork(network).remove().then(
      () => true,
      (error: { statusCode?: number }) => error.statusCode === 404,
    );
    if (removed) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
for (const line of lines) console.log(line);
// Last line: the headline, the sequential create-to-Running + terminate cycle.
console.log(headline);
