/**
 * scale: process-provider create throughput as live workers pile up, against the same measure at a small fleet in the
 * same run. A real host (in this process) with the process provider creates `sleep 3600` workers through
 * WorkerService, IN_FLIGHT at a time: a window of WINDOW creates is timed around 250 live (from 150 to 350), then
 * creating goes on and the same window is timed around 2,000 live (from 1,900 to 2,100). The target (issue "Scale,
 * process provider"): the rate at 2,000 is at least 70% of the rate at 250, no plugin thread is declared hung, and
 * RSS stays under 512 MiB.
 *
 * RSS is this process's (the host runs in it, plugin threads included), sampled every RSS_SAMPLE_MS; the worker
 * processes themselves are not counted. Each worker is two processes (the wrapper shell and its command), so the
 * bench checks first that the process limit and pid_max leave room for them. Prints one JSON line per metric; the
 * last line is the headline ratio.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { killProcessWorkers } from '../helpers/processWorkers.ts';
import { processProviderYaml, startTestHost } from '../helpers/startTestHost.ts';

const LOW = 250;
const HIGH = 2_000;
const WINDOW = 200;
const IN_FLIGHT = 10;
const RSS_SAMPLE_MS = 250;
const RSS_LIMIT_MIB = 512;
const MiB = 1024 * 1024;
const spec = { command: ['sleep', '3600'] };

{
  const processes = 2 * (HIGH + WINDOW / 2);
  const maxProcesses = /^Max processes\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 'unlimited';
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  if ((maxProcesses !== 'unlimited' && Number(maxProcesses) < processes * 1.5) || pidMax < processes * 2) {
    throw new Error(`this bench starts ${processes} processes: raise the process limit (ulimit -u, now ${maxProcesses}) or kernel.pid_max (now ${pidMax})`);
  }
}

const t = await startTestHost(`
host: { id: bench-scale, stateDir: \${DIR}/state, logLevel: warn }
${processProviderYaml('local', `{ maxWorkers: ${HIGH + WINDOW} }`)}`);

let rssMax = 0;
const sampleRss = (): void => {
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
};
const sampler = setInterval(sampleRss, RSS_SAMPLE_MS);
sampler.unref();

const failures = new Map<string, number>();
let created = 0;

/** Creates workers IN_FLIGHT at a time until `total` were asked for; returns successful creates/s (failures are counted). */
async function createUpTo(total: number): Promise<number> {
  const want = total - created;
  const before = created;
  let issued = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (issued < want) {
        issued++;
        try {
          await t.host.workers.createWorker({ spec });
          created++;
        } catch (error) {
          const code = error instanceof WorkerManagerError ? error.code : 'non-WorkerManagerError';
          failures.set(code, (failures.get(code) ?? 0) + 1);
          if (failures.size === 1 && failures.get(code) === 1) console.log(`# first failed create: ${code}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }),
  );
  return (created - before) / ((performance.now() - start) / 1_000);
}

/** Plugin threads the host declared hung and replaced (the host logs each fault of a plugin instance). */
const hangs = (): number =>
  t.logs.filter((l) => {
    const entry = JSON.parse(l) as { msg?: string; state?: string; code?: string };
    return entry.msg === 'plugin instance crashed' && entry.state === 'crashed' && entry.code === 'HOST_ERR_PLUGIN_HUNG';
  }).length;

function line(metric: string, value: number, baseline: number, unit: string, extra: Record<string, unknown> = {}): string {
  const round = (n: number): number => Math.round(n * 1_000) / 1_000;
  return JSON.stringify({ bench: 'scale', metric, value: round(value), baseline: round(baseline), ratio: baseline === 0 ? null : round(value / baseline), unit, ...extra });
}

const lines: string[] = [];
try {
  const began = performance.now();
  await createUpTo(LOW - WINDOW / 2);
  const lowRate = await createUpTo(LOW + WINDOW / 2);
  sampleRss();
  const rssLow = process.memoryUsage().rss;
  console.log(`# around ${LOW} live: ${lowRate.toFixed(2)} creates/s over ${WINDOW} creates, ${IN_FLIGHT} in flight; rss ${(rssLow / MiB).toFixed(0)} MiB`);
  for (let level = 500; level < HIGH - WINDOW / 2; level += 250) {
    const rate = await createUpTo(level);
    console.log(`# filling: ${created} live, last stretch ${rate.toFixed(2)} creates/s, ${((performance.now() - began) / 1_000).toFixed(0)} s so far`);
  }
  await createUpTo(HIGH - WINDOW / 2);
  const highRate = await createUpTo(HIGH + WINDOW / 2);
  sampleRss();
  console.log(`# around ${HIGH} live: ${highRate.toFixed(2)} creates/s over ${WINDOW} creates; rss max ${(rssMax / MiB).toFixed(0)} MiB`);

  const hung = hangs();
  console.log(`# failed creates: ${failures.size === 0 ? 'none' : JSON.stringify(Object.fromEntries(failures))}; plugin threads declared hung: ${hung}`);
  lines.push(line(`hung:${HIGH}-live`, hung, 0, 'errors'));
  lines.push(line(`rss_mib:${HIGH}-live`, rssMax / MiB, rssLow / MiB, 'MiB', { limit: RSS_LIMIT_MIB }));
  lines.push(line(`creates_per_s:${HIGH}-vs-${LOW}`, highRate, lowRate, 'creates/s'));
} finally {
  clearInterval(sampler);
  const teardown = performance.now();
  // Terminated through the host, as a fleet would be; what is left (a failed terminate) is killed below.
  const routed = await t.host.workers.listWorkers({ provider: 'local' });
  let next = 0;
  let terminateFailures = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < routed.length) {
        const workerId = routed[next++]?.worker.workerId;
        assert.ok(workerId !== undefined);
        await t.host.workers.terminateWorker(workerId, { gracePeriodMs: 1_000 }).catch(() => terminateFailures++);
      }
    }),
  );
  await Promise.all(t.host.registry.instances().map((i) => (i.stateDir === undefined ? undefined : killProcessWorkers(i.stateDir))));
  await t.stop();
  console.log(`# teardown: ${routed.length} workers terminated in ${((performance.now() - teardown) / 1_000).toFixed(1)} s (${terminateFailures} failed)`);
}
// After the teardown's own output, so that the headline is the last line.
for (const l of lines) console.log(l);
