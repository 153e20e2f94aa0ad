import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { collectOutput, finished } from '../helpers/childProcess.ts';
import { killProcessWorkers } from '../helpers/processWorkers.ts';
import { processProviderYaml, repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';

// `wm workers create` reports a worker that ended while it waited by the worker's own exit code, every time: a CI
// system runs jobs through it and reads that code. Regression: `wm workers create -- echo hi` exited 0 or 1 at random,
// because an end seen before Running was reported as an error (exit 1) instead of as the job's result.

const main = path.join(repoRoot, 'host', 'src', 'cli', 'main.ts');
const RUNS = 20;
/** CLI processes at once: each compiles the CLI through tsx, seconds on a loaded machine. */
const PARALLEL = 4;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the exit code of wm workers create', { timeout: budget(600_000) }, () => {
  let h: TestHost;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    h = await startTestHost(`host: { id: h-cli-exit, stateDir: \${DIR}/state }\napi: { enabled: true, port: 0 }\n${processProviderYaml('local')}`);
    const tokenFile = h.host.adminTokenFile;
    assert.ok(h.host.apiUrl !== undefined && tokenFile !== undefined);
    env = { PATH: process.env['PATH'], HOME: h.dir, WM_URL: h.host.apiUrl, WM_TOKEN_FILE: tokenFile };
  });
  after(async () => {
    const stateDirs = h.host.registry.instances().map((i) => i.stateDir);
    await h.stop();
    for (const dir of stateDirs) if (dir !== undefined) await killProcessWorkers(dir);
  });

  async function wm(args: string[]): Promise<Run> {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    return finished(child, `wm ${args.join(' ')}`, collectOutput(child), budget(90_000));
  }

  /** Runs `args` `times` times, PARALLEL at once. */
  async function repeat(args: string[], times: number): Promise<Run[]> {
    const out: Run[] = [];
    for (let i = 0; i < times; i += PARALLEL) out.push(...(await Promise.all(Array.from({ length: Math.min(PARALLEL, times - i) }, () => wm(args)))));
    return out;
  }

  it(`--wait exit: sh -c 'exit 4' exits 4, ${RUNS} times out of ${RUNS}`, async () => {
    const runs = await repeat(['workers', 'create', '--wait', 'exit', '--', 'sh', '-c', 'exit 4'], RUNS);
    for (const run of runs) {
      assert.equal(run.code, 4, run.stderr);
      assert.match(run.stderr, /ended: Failed \(exit 4\)/);
    }
  });

  it(`the default wait (running): sh -c 'exit 4' exits 4 whenever its end is what wm saw, and 0 only after reporting it Running; never anything else`, async () => {
    const runs = await repeat(['workers', 'create', '--', 'sh', '-c', 'exit 4'], RUNS / 2);
    for (const run of runs) {
      if (run.code === 4) assert.match(run.stderr, /ended: Failed \(exit 4\)/);
      else {
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stderr, /is Running/, 'exit 0 only for a worker reported Running');
      }
    }
  });

  it('a job that exits 0 is a success whether or not it was seen running, and a job killed by a signal is a failure', async () => {
    for (const run of await repeat(['workers', 'create', '--', 'sh', '-c', 'exit 0'], 4)) assert.equal(run.code, 0, run.stderr);
    const killed = await wm(['workers', 'create', '--wait', 'exit', '--', 'sh', '-c', 'kill -9 $$']);
    assert.notEqual(killed.code, 0, killed.stderr);
  });

  it('--json prints the worker as the wait left it, with its whole record', async () => {
    const run = await wm(['workers', 'create', '--json', '--wait', 'exit', '--', 'sh', '-c', 'exit 3']);
    assert.equal(run.code, 3, run.stderr);
    const body = JSON.parse(run.stdout) as { state: { phase: string; exitCode?: number }; phase: string; record?: { state: { phase: string; exitCode?: number } } };
    assert.deepEqual({ phase: body.state.phase, exitCode: body.state.exitCode }, { phase: 'Failed', exitCode: 3 });
    assert.equal(body.phase, 'Failed');
    assert.equal(body.record?.state.exitCode, 3, 'the record in the answer is the one the wait read last, not the create\'s');
  });
});
