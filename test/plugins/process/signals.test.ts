import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { budget } from '../../helpers/waitFor.ts';
import { finalState, logText, openHarness, processRuns, waitFor } from './helpers.ts';

/** Pids whose process group is `pgid` (from /proc), with their state letter (zombies left out). */
async function groupStates(pgid: number): Promise<Array<{ pid: number; state: string }>> {
  const { readdir } = await import('node:fs/promises');
  const out: Array<{ pid: number; state: string }> = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push({ pid: Number(name), state: fields[0] ?? '' });
    } catch {
      // gone
    }
  }
  return out;
}

/** Pids whose process group is `pgid`. */
async function groupOf(pgid: number): Promise<number[]> {
  return (await groupStates(pgid)).map((p) => p.pid);
}

/** Waits until no process of the group is left: a SIGKILL lands when the process next runs, later on a loaded machine. */
async function groupGone(pgid: number): Promise<void> {
  await waitFor(async () => (await groupOf(pgid)).length === 0, () => `every process of group ${pgid} to be gone`);
}

const TICKER = ['sh', '-c', 'while :; do echo tick; sleep 0.05; done'];
const ticks = async (h: Parameters<typeof logText>[0], workerId: string): Promise<number> => (await logText(h, workerId)).split('\n').length - 1;

describe('process plugin: signals, exits and deadlines', () => {
  it('pause really stops the output, resume continues it', async (t) => {
    const h = await openHarness(t);
    // The same loop unpaused beside it is the barrier: once it has ticked several more times, the paused one would
    // have too, however slowly a loaded machine runs them both.
    const [ticker] = await Promise.all([h.proxy.createWorker({ workerId: 'ticker', spec: { command: TICKER } }), h.proxy.createWorker({ workerId: 'control', spec: { command: TICKER } })]);
    await waitFor(async () => (await ticks(h, 'ticker')) > 3, 'some ticks');
    assert.deepEqual(await h.proxy.pauseWorker({ workerId: 'ticker' }), { phase: 'Paused' });
    // A SIGSTOP lands when each process next runs; a write in progress then still completes.
    await waitFor(async () => (await groupStates(Number(ticker.providerRef))).every((p) => p.state === 'T'), 'every process of the paused worker to be stopped');
    const atPause = (await logText(h, 'ticker')).length;
    const controlAt = await ticks(h, 'control');
    await waitFor(async () => (await ticks(h, 'control')) >= controlAt + 5, 'five more ticks of the unpaused worker');
    assert.equal((await logText(h, 'ticker')).length, atPause, 'no output while paused');
    await h.proxy.resumeWorker({ workerId: 'ticker' });
    await waitFor(async () => ((await logText(h, 'ticker')).length > atPause ? true : undefined), 'output after resume');
    await Promise.all([h.proxy.terminateWorker({ workerId: 'ticker' }), h.proxy.terminateWorker({ workerId: 'control' })]);
  });

  it('terminate of a paused worker still ends it', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'frozen', spec: { command: ['sleep', '600'] } });
    await h.proxy.pauseWorker({ workerId: 'frozen' });
    const r = await h.proxy.terminateWorker({ workerId: 'frozen', gracePeriodMs: 2_000 });
    assert.deepEqual(r.state, { phase: 'Terminated', exitCode: 143 });
  });

  it('terminate escalates to SIGKILL for a process that ignores SIGTERM, and leaves no process of the group', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'stubborn', spec: { command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done'] } });
    const pgid = Number(w.providerRef);
    await waitFor(async () => ((await logText(h, 'stubborn')).includes('ready') ? true : undefined), 'the trap to be set');
    const started = Date.now();
    const r = await h.proxy.terminateWorker({ workerId: 'stubborn', gracePeriodMs: 400 });
    const took = Date.now() - started;
    assert.ok(took >= 400, `waited the grace period (${took} ms)`);
    // The state below proves the SIGKILL; this bound only tells a terminate that hangs from one a loaded machine slowed.
    assert.ok(took < budget(30_000), `then killed it (${took} ms)`);
    assert.deepEqual(r.state, { phase: 'Terminated', exitCode: 137 });
    await groupGone(pgid);
  });

  it('terminate also removes background processes the command left behind', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'forker', spec: { command: ['sh', '-c', '(trap "" TERM; sleep 600) & echo started; wait'] } });
    await waitFor(async () => ((await logText(h, 'forker')).includes('started') ? true : undefined), 'the background child');
    await h.proxy.terminateWorker({ workerId: 'forker', gracePeriodMs: 200 });
    await groupGone(Number(w.providerRef));
  });

  it('reports exit codes and failure reasons', async (t) => {
    const h = await openHarness(t);
    const cases: Array<[string, string, object]> = [
      ['ok', 'exit 0', { phase: 'Terminated', exitCode: 0 }],
      ['three', 'exit 3', { phase: 'Failed', reason: 'ExitCode3', exitCode: 3 }],
      ['killed', 'kill -KILL $$', { phase: 'Failed', reason: 'SignalSIGKILL', exitCode: 137 }],
      ['termed', 'kill -TERM $$', { phase: 'Failed', reason: 'SignalSIGTERM', exitCode: 143 }],
      ['missing', 'exec /nonexistent/binary', { phase: 'Failed', reason: 'ExitCode127', exitCode: 127 }],
    ];
    for (const [workerId, script] of cases) await h.proxy.createWorker({ workerId, spec: { command: ['sh', '-c', script] } });
    for (const [workerId, , expected] of cases) assert.deepEqual(await finalState(h, workerId), expected, workerId);
    await waitFor(() => h.events.find((e) => e.workerId === 'three' && e.type === 'WorkerFailed'), 'WorkerFailed for three');
    const failed = h.events.find((e) => e.workerId === 'three' && e.type === 'WorkerFailed');
    assert.ok(failed?.type === 'WorkerFailed' && failed.reason === 'ExitCode3');
    await waitFor(() => h.events.find((e) => e.workerId === 'ok' && e.type === 'WorkerTerminated'), 'WorkerTerminated for ok');
  });

  it('a worker whose wrapper is killed from outside is Failed: ProcessLost', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'lost', spec: { command: ['sleep', '600'] } });
    process.kill(-Number(w.providerRef), 'SIGKILL');
    assert.deepEqual(await finalState(h, 'lost'), { phase: 'Failed', reason: 'ProcessLost' });
  });

  it('spec.timeoutMs ends the worker as Failed: DeadlineExceeded', async (t) => {
    const h = await openHarness(t);
    const started = Date.now();
    // 600 s: the 500 ms deadline must be what ends it, however late a loaded machine gets to it.
    const w = await h.proxy.createWorker({ workerId: 'slow', spec: { command: ['sleep', '600'], timeoutMs: 500 } });
    const state = await finalState(h, 'slow');
    assert.deepEqual(state, { phase: 'Failed', reason: 'DeadlineExceeded', exitCode: 143 });
    assert.ok(Date.now() - started >= 500);
    // The wrapper records the status, then exits: gone a moment after the state says so.
    await waitFor(async () => !(await processRuns(Number(w.providerRef))), 'the worker process to be gone');
    await waitFor(() => h.events.find((e) => e.workerId === 'slow' && e.type === 'WorkerFailed'), 'WorkerFailed');
  });

  it('restart runs the command again in the same folder and keeps the log sequence', async (t) => {
    const h = await openHarness(t);
    const first = await h.proxy.createWorker({ workerId: 'again', spec: { command: ['sh', '-c', 'echo "run $$"; exec sleep 600'] } });
    await waitFor(async () => ((await logText(h, 'again')).includes('run') ? true : undefined), 'first run');
    const second = await h.proxy.restartWorker({ workerId: 'again' });
    assert.notEqual(second.providerRef, first.providerRef);
    assert.equal(second.createdAt, first.createdAt);
    await waitFor(async () => !(await processRuns(Number(first.providerRef))), 'the first process to be gone');
    await waitFor(async () => ((await logText(h, 'again')).match(/run \d+/g)?.length === 2 ? true : undefined), 'second run in the same log');
    const seqs: number[] = [];
    for await (const c of await h.proxy.getLogs({ workerId: 'again' })) seqs.push(c.seq);
    assert.deepEqual(seqs, [0, 1]);
    const meta = JSON.parse(await readFile(path.join(h.stateDir, 'workers', 'again', 'meta.json'), 'utf8')) as { generation: number };
    assert.equal(meta.generation, 1);
    await h.proxy.terminateWorker({ workerId: 'again' });
  });
});
