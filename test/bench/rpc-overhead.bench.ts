/**
 * rpc-overhead: a host -> plugin call through the typed proxy, contract validation on both sides and the sandbox,
 * against a raw piscina run() of the same payload on a worker doing the same echo work, in the same run.
 *
 * The baseline pool has the sandbox's thread count, concurrency and `atomics: 'disabled'` (the sandbox needs a live
 * event loop in idle threads for heartbeats and streams), so the ratio is the cost of the sandbox's own layers. A
 * second baseline with piscina's default atomics is printed for context.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkerProviderContract } from '@worker-manager/plugin-sdk';
import { Piscina } from 'piscina';
import { PluginSandbox } from '../../host/src/sandbox/index.ts';
import { latencies, throughput, type Call } from './measure.ts';


const THREADS = 1;
const CONCURRENCY = 16;
const WARMUP = 2_000;
const SEQUENTIAL = 5_000;
const ROUNDS = 4;
const IN_FLIGHT = 128;
const THROUGHPUT_CALLS = 20_000;

const echoDir = fileURLToPath(new URL('../fixtures/plugins/echo', import.meta.url));
const stateDir = await mkdtemp(join(tmpdir(), 'wm-bench-rpc-'));
const sandbox = new PluginSandbox({
  pluginId: 'echo',
  pluginVersion: '1.0.0',
  kind: 'provider',
  instance: 'bench',
  hostId: 'bench-host',
  entry: join(echoDir, 'index.ts'),
  packageDir: echoDir,
  config: {},
  stateDir: join(stateDir, 'state'),
  isolation: 'trusted',
  env: {},
  limits: {
    threads: THREADS,
    concurrentCallsPerThread: CONCURRENCY,
    heapMb: 256,
    callTimeoutMs: 30_000,
    startTimeoutMs: 60_000,
    heartbeatMs: 1_000,
    hangTimeoutMs: 10_000,
    restart: { maxRestarts: 0, windowMs: 60_000, backoffMs: 100, maxBackoffMs: 5_000 },
  },
  methods: Object.keys(WorkerProviderContract.operations),
  contract: WorkerProviderContract,
});
await sandbox.start();
const echo = sandbox.proxy<typeof WorkerProviderContract>();

const rawOptions = { filename: fileURLToPath(new URL('./rawEchoWorker.mjs', import.meta.url)), minThreads: THREADS, maxThreads: THREADS, concurrentTasksPerWorker: CONCURRENCY, env: {} };
const raw = new Piscina({ ...rawOptions, atomics: 'disabled' });
const rawSync = new Piscina(rawOptions);

const small = { workerId: 'bench-worker', spec: { command: ['sleep', '30'], labels: { team: 'ci', pipeline: 'bench' } } };
const command = Array.from({ length: 40 }, (_, i) => `argument-${String(i).padStart(3, '0')}-${'x'.repeat(36)}`);
const large = { workerId: 'bench-worker', command };
await echo.createWorker(small);

const cases: Array<{ name: string; sandbox: Call; raw: Call; rawSync: Call }> = [
  {
    name: 'createWorker (small)',
    sandbox: () => echo.createWorker(small),
    raw: () => raw.run({ method: 'createWorker', params: small }),
    rawSync: () => rawSync.run({ method: 'createWorker', params: small }),
  },
  {
    name: `executeCommand (~${JSON.stringify(large).length} B)`,
    sandbox: () => echo.executeCommand(large),
    raw: () => raw.run({ method: 'executeCommand', params: large }),
    rawSync: () => rawSync.run({ method: 'executeCommand', params: large }),
  },
];


const fmt = (n: number): string => n.toFixed(1);
let headline: { value: number; baseline: number } | undefined;
const json: string[] = [];
try {
  console.log(`node ${process.versions.node}, ${THREADS} thread(s), concurrentTasksPerWorker ${CONCURRENCY}, ${SEQUENTIAL * ROUNDS} sequential calls per subject after ${WARMUP} warm-up calls`);
  for (const c of cases) {
    const [sb, rw, rs] = await latencies([c.sandbox, c.raw, c.rawSync], { warmup: WARMUP, perRound: SEQUENTIAL, rounds: ROUNDS });
    if (sb === undefined || rw === undefined || rs === undefined) throw new Error('missing samples');
    console.log(
      `${c.name}: sandbox p50 ${fmt(sb.p50)} us p95 ${fmt(sb.p95)} us | raw piscina p50 ${fmt(rw.p50)} us p95 ${fmt(rw.p95)} us | ratio p50 ${(sb.p50 / rw.p50).toFixed(2)} | raw piscina (atomics sync) p50 ${fmt(rs.p50)} us`,
    );
    headline ??= { value: sb.p50, baseline: rw.p50 };
    json.push(JSON.stringify({ bench: 'rpc-overhead', metric: `p50_us:${c.name.split(' ')[0]}`, value: round(sb.p50), baseline: round(rw.p50), ratio: round(sb.p50 / rw.p50, 2), unit: 'us' }));
  }
  for (const c of cases) {
    // Alternate and keep the best of two: throughput on a shared machine is noisier than latency.
    const sbRate = Math.max(await throughput(c.sandbox, { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }), await throughput(c.sandbox, { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }));
    const rwRate = Math.max(await throughput(c.raw, { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }), await throughput(c.raw, { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }));
    console.log(`${c.name}: throughput with ${IN_FLIGHT} in flight: sandbox ${Math.round(sbRate)} calls/s | raw piscina ${Math.round(rwRate)} calls/s | ratio ${(sbRate / rwRate).toFixed(2)}`);
    json.push(JSON.stringify({ bench: 'rpc-overhead', metric: `calls_per_s:${c.name.split(' ')[0]}`, value: Math.round(sbRate), baseline: Math.round(rwRate), ratio: round(sbRate / rwRate, 2), unit: 'calls/s' }));
  }
} finally {
  await sandbox.stop();
  await Promise.all([raw.destroy(), rawSync.destroy()]);
  await rm(stateDir, { recursive: true, force: true });
}

function round(n: number, digits = 1): number {
  return Number(n.toFixed(digits));
}

for (const line of json) console.log(line);
if (headline === undefined) throw new Error('no measurement');
// Last line: the headline metric, small createWorker-like call, p50 sequential latency.
console.log(JSON.stringify({ bench: 'rpc-overhead', metric: 'p50_us', value: round(headline.value), baseline: round(headline.baseline), ratio: round(headline.value / headline.baseline, 2), unit: 'us' }));
