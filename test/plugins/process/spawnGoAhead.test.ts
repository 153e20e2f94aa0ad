import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnWrapped } from '../../../plugins/process/src/spawnWrapped.ts';
import { workerPaths } from '../../../plugins/process/src/workerPaths.ts';
import { collectOutput, finished } from '../../helpers/childProcess.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { processRuns, tempStateDir } from './helpers.ts';

// A worker's wrapper runs its command only once the plugin has recorded the worker (meta.json) and said `go`.
// Regression: a host SIGKILLed between the spawn and the meta write left a running process that no listing, terminate
// or adoption could find; the client's retry then started a second one beside it.

const COMMAND = ['sh', '-c', 'echo ran > ran.txt; exec sleep 600'];
const spawnThenDie = fileURLToPath(new URL('./fixtures/spawnThenDie.ts', import.meta.url));

function setUp(stateDir: string, workerId: string): { paths: ReturnType<typeof workerPaths>; cwd: string } {
  const paths = workerPaths(stateDir, workerId);
  const cwd = path.join(paths.dir, 'work');
  mkdirSync(cwd, { recursive: true });
  return { paths, cwd };
}

describe('the go-ahead of a worker wrapper', { timeout: budget(120_000) }, () => {
  it('runs the command after go()', async (t) => {
    const { paths, cwd } = setUp(await tempStateDir(t), 'w-go');
    const launched = spawnWrapped({ paths, argv: COMMAND, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, cwd });
    t.after(() => void process.kill(-launched.pid, 'SIGKILL'));
    launched.go();
    await waitFor(() => existsSync(path.join(cwd, 'ran.txt')), 'the command to run after go');
  });

  it('exits without running the command when abandoned', async (t) => {
    const { paths, cwd } = setUp(await tempStateDir(t), 'w-abandon');
    const launched = spawnWrapped({ paths, argv: COMMAND, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, cwd });
    launched.abandon();
    await waitFor(async () => !(await processRuns(launched.pid)), 'the abandoned wrapper to exit');
    assert.equal(existsSync(path.join(cwd, 'ran.txt')), false, 'the command never ran');
    assert.equal(existsSync(paths.exit), false, 'and left no exit status, as a worker that never started');
  });

  it('exits without running the command when the process that spawned it dies first', async (t) => {
    const stateDir = await tempStateDir(t);
    const { cwd } = setUp(stateDir, 'w-orphan');
    const child = spawn(process.execPath, ['--import', 'tsx', spawnThenDie, stateDir, 'w-orphan', cwd], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = await finished(child, 'the spawning process', collectOutput(child), budget(60_000));
    assert.equal(run.code, null, `it died by its signal: ${run.stderr}`);
    const pid = Number(run.stdout.trim());
    assert.ok(pid > 1, run.stdout);
    await waitFor(async () => !(await processRuns(pid)), 'the orphaned wrapper to exit');
    assert.equal(existsSync(path.join(cwd, 'ran.txt')), false, 'the command never ran');
  });
});
