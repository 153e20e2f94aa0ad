/**
 * sandbox: a call to a restricted instance (its own bubblewrap-confined process, with the thread pool inside it)
 * against the same call to a trusted instance (a thread of this process), same plugin (echo), same payload, same run.
 * Prints the sequential p50 ratio (target <= 1.5), the restricted instance's throughput with calls in flight (target
 * >= 10,000 calls/s), and the cold start of a restricted instance to its first answered call (target <= 1 s, context).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WorkerProviderContract, type Proxied } from '@worker-manager/plugin-sdk';
import { PluginSandbox, type SandboxOptions } from '../../host/src/sandbox/PluginSandbox.ts';
import { ProcessSandbox } from '../../host/src/sandbox/process/ProcessSandbox.ts';
import { latencies, percentile, throughput } from './measure.ts';

const WARMUP = 2_000;
const PER_ROUND = 2_500;
const ROUNDS = 4;
const IN_FLIGHT = 128;
const THROUGHPUT_CALLS = 20_000;
const COLD_STARTS = 5;

const echoDir = fileURLToPath(new URL('../fixtures/plugins/echo', import.meta.url));
const stateDir = await mkdtemp(join(tmpdir(), 'wm-bench-sandbox-'));
const options = (instance: string, isolation: 'trusted' | 'restricted'): SandboxOptions => ({
  pluginId: 'echo',
  pluginVersion: '1.0.0',
  kind: 'provider',
  instance,
  hostId: 'bench-host',
  entry: join(echoDir, 'index.ts'),
  packageDir: echoDir,
  config: {},
  stateDir: join(stateDir, instance),
  isolation,
  env: {},
  limits: {
    threads: 1,
    concurrentCallsPerThread: 16,
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

const round = (n: number, digits = 1): number => Number(n.toFixed(digits));
const trusted = new PluginSandbox(options('trusted', 'trusted'));
const restricted = new ProcessSandbox(options('restricted', 'restricted'));
const lines: string[] = [];
try {
  await Promise.all([trusted.start(), restricted.start()]);
  const t = trusted.proxy<typeof WorkerProviderContract>();
  const r = restricted.proxy<typeof WorkerProviderContract>();
  const small = { workerId: 'bench-worker', spec: { command: ['sleep', '30'], labels: { team: 'ci', pipeline: 'bench' } } };
  await t.createWorker(small);
  await r.createWorker(small);
  const call = (p: Proxied<typeof WorkerProviderContract>) => () => p.createWorker(small);

  console.log(`node ${process.versions.node}; echo createWorker (idempotent, ~${JSON.stringify(small).length} B); ${PER_ROUND * ROUNDS} sequential calls each after ${WARMUP} warm-up calls`);
  const [rs, ts] = await latencies([call(r), call(t)], { warmup: WARMUP, perRound: PER_ROUND, rounds: ROUNDS });
  if (rs === undefined || ts === undefined) throw new Error('missing samples');
  console.log(`sequential: restricted p50 ${round(rs.p50)} us p95 ${round(rs.p95)} us | trusted p50 ${round(ts.p50)} us p95 ${round(ts.p95)} us | ratio p50 ${(rs.p50 / ts.p50).toFixed(2)}`);
  // Context: the floor of any out-of-process design here, a bare node child echoing one JSON line per request.
  const echoChild = spawn(process.execPath, ['-e', "require('readline').createInterface({input:process.stdin}).on('line',(l)=>process.stdout.write(l+'\\n'))"], { stdio: ['pipe', 'pipe', 'inherit'] });
  let waiting: (() => void) | undefined;
  echoChild.stdout.on('data', () => waiting?.());
  const pipeEcho = (): Promise<void> =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      echoChild.stdin.write(`${JSON.stringify({ type: 'call', id: 1, method: 'createWorker', params: small })}\n`);
    });
  const [pipe] = await latencies([pipeEcho], { warmup: WARMUP, perRound: PER_ROUND, rounds: 1 });
  echoChild.kill();
  console.log(`context: a bare pipe round trip to a node child (no sandbox, no thread) p50 ${round(pipe?.p50 ?? Number.NaN)} us`);
  const latencyLine = { bench: 'sandbox', metric: 'p50_us:restricted-vs-trusted', value: round(rs.p50), baseline: round(ts.p50), ratio: round(rs.p50 / ts.p50, 2), unit: 'us' };

  // Best of two each, alternating: throughput on a shared machine is noisier than latency.
  const rRate = Math.max(await throughput(call(r), { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }), await throughput(call(r), { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }));
  const tRate = Math.max(await throughput(call(t), { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }), await throughput(call(t), { total: THROUGHPUT_CALLS, inFlight: IN_FLIGHT }));
  console.log(`throughput with ${IN_FLIGHT} in flight: restricted ${Math.round(rRate)} calls/s | trusted ${Math.round(tRate)} calls/s | ratio ${(rRate / tRate).toFixed(2)}`);
  lines.push(JSON.stringify({ bench: 'sandbox', metric: 'calls_per_s:restricted', value: Math.round(rRate), baseline: Math.round(tRate), ratio: round(rRate / tRate, 2), unit: 'calls/s' }));

  // Cold start: from construction (bundling included) to the first answered call; against a trusted instance's.
  const cold = async (isolation: 'trusted' | 'restricted', i: number): Promise<number> => {
    const sandbox = isolation === 'trusted' ? new PluginSandbox(options(`cold-t-${i}`, 'trusted')) : new ProcessSandbox(options(`cold-r-${i}`, 'restricted'));
    const start = performance.now();
    await sandbox.start();
    await sandbox.proxy<typeof WorkerProviderContract>().listWorkers({});
    const ms = performance.now() - start;
    await sandbox.stop();
    return ms;
  };
  const coldR: number[] = [];
  const coldT: number[] = [];
  for (let i = 0; i < COLD_STARTS; i++) {
    coldR.push(await cold('restricted', i));
    coldT.push(await cold('trusted', i));
  }
  coldR.sort((a, b) => a - b);
  coldT.sort((a, b) => a - b);
  const medianR = percentile(coldR, 0.5);
  const medianT = percentile(coldT, 0.5);
  console.log(`cold start to first answered call (median of ${COLD_STARTS}): restricted ${Math.round(medianR)} ms | trusted ${Math.round(medianT)} ms`);
  lines.push(JSON.stringify({ bench: 'sandbox', metric: 'ms:restricted-cold-start', value: Math.round(medianR), baseline: Math.round(medianT), ratio: round(medianR / medianT, 2), unit: 'ms' }));
  lines.push(JSON.stringify(latencyLine));
} finally {
  await Promise.all([trusted.stop(), restricted.stop()]);
  await rm(stateDir, { recursive: true, force: true });
}
// Last line: the headline, restricted vs trusted p50 of one call.
for (const line of lines) console.log(line);
