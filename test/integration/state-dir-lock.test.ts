import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { stateDirLockPath, type StateDirLockHolder } from '../../host/src/StateDirLock.ts';
import { processProviderYaml, repoRoot } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

// Real `wm serve` processes, started as a user starts them, on one state dir.
const bin = path.join(repoRoot, 'host', 'bin', 'wm.js');
// A cold start compiles the host and a plugin thread through tsx: seconds on an idle machine, far more on a loaded one.
const START_MS = 60_000;

interface Served {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code once the process has exited and its output is all read. */
  closed: Promise<number | null>;
}

function serve(t: TestContext, config: string): Served {
  const child = spawn(process.execPath, [bin, 'serve', '--config', config], { cwd: repoRoot, env: { ...process.env, WM_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  t.after(() => void child.kill('SIGKILL'));
  return { child, output: () => out, closed };
}

async function started(s: Served, hostId: string): Promise<void> {
  await waitFor(() => s.output().includes(`host '${hostId}' started`) || s.child.exitCode !== null, () => `the host to start; output:\n${s.output()}`, START_MS);
  assert.equal(s.child.exitCode, null, `the host exited early:\n${s.output()}`);
}

/** Every file under `dir` with its size, mtime and content: what "changed nothing" is checked against. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const s = await stat(file);
    out.set(path.relative(dir, file), entry.isFile() ? `${s.size} ${s.mtimeMs} ${(await readFile(file)).toString('base64')}` : `dir ${s.mtimeMs}`);
  }
  return out;
}

async function hostDir(t: TestContext, hostId: string): Promise<{ config: string; stateDir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-state-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'wm.yaml');
  await writeFile(config, `host: { id: ${hostId}, stateDir: ./state, logLevel: warn }\napi: { enabled: true, port: 0 }\n${processProviderYaml()}`);
  return { config, stateDir: path.join(dir, 'state') };
}

describe('the state dir lock of wm serve', { concurrency: 1, timeout: budget(4 * START_MS) }, () => {
  it('a second host on the same state dir exits with HOST_ERR_STATE_DIR_LOCKED naming the holder, and changes nothing there', async (t) => {
    const { config, stateDir } = await hostDir(t, 'lock-a');
    const first = serve(t, config);
    await started(first, 'lock-a');
    const token = await readFile(path.join(stateDir, 'admin.token'));
    const before = await snapshot(stateDir);

    const second = serve(t, config);
    const code = await within(second.closed, () => `the second host to exit; output:\n${second.output()}`, START_MS);
    assert.notEqual(code, 0, second.output());
    assert.match(second.output(), new RegExp(`HOST_ERR_STATE_DIR_LOCKED.*pid ${first.child.pid}`));
    assert.deepEqual(await readFile(path.join(stateDir, 'admin.token')), token, 'the running host\'s admin token is byte-identical');
    assert.deepEqual(await snapshot(stateDir), before, 'nothing in the state dir changed');
    assert.equal(first.child.exitCode, null, 'the first host still runs');

    // A clean stop releases the lock.
    first.child.kill('SIGTERM');
    assert.equal(await within(first.closed, () => `the first host to stop; output:\n${first.output()}`, START_MS), 0, first.output());
    assert.equal(existsSync(stateDirLockPath(stateDir)), false, 'stop removed host.lock');
  });

  it('a host SIGKILLed with its lock held is replaced at the next start, which takes over the stale lock', async (t) => {
    const { config, stateDir } = await hostDir(t, 'lock-b');
    const crashed = serve(t, config);
    await started(crashed, 'lock-b');
    crashed.child.kill('SIGKILL');
    await within(crashed.closed, 'the killed host to be reaped');
    const stale = JSON.parse(await readFile(stateDirLockPath(stateDir), 'utf8')) as StateDirLockHolder;
    assert.equal(stale.pid, crashed.child.pid, 'the killed host left its lock behind');

    const next = serve(t, config);
    await started(next, 'lock-b');
    const taken = JSON.parse(await readFile(stateDirLockPath(stateDir), 'utf8')) as StateDirLockHolder;
    assert.equal(taken.pid, next.child.pid);
    assert.deepEqual((await readdir(stateDir)).filter((n) => n.startsWith('host.lock')), ['host.lock'], 'no claim or temporary file is left');

    next.child.kill('SIGTERM');
    assert.equal(await within(next.closed, () => `the host to stop; output:\n${next.output()}`, START_MS), 0, next.output());
    assert.equal(existsSync(stateDirLockPath(stateDir)), false);
  });
});
