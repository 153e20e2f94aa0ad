import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { isWorkerManagerError, readProcStat } from '@worker-manager/plugin-sdk';
import { StateDirLock, stateDirLockPath, type StateDirLockHolder } from '../../host/src/StateDirLock.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

const isLocked = (pid: number) => (err: unknown): boolean =>
  isWorkerManagerError(err) && err.code === 'HOST_ERR_STATE_DIR_LOCKED' && err.message.includes(`pid ${pid}`) && (err.details as { pid?: number }).pid === pid;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const holderIn = async (dir: string): Promise<StateDirLockHolder> => JSON.parse(await readFile(stateDirLockPath(dir), 'utf8')) as StateDirLockHolder;

const startTimeOf = (pid: number): string => readProcStat(pid)?.startTime ?? assert.fail(`no process ${pid}`);

/** A pid that belonged to a process which has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid ?? assert.fail('no pid');
  await within(new Promise((resolve) => child.once('close', resolve)), 'a short-lived process to exit');
  return pid;
}

/** A lock file as a host on this machine (unless told otherwise) would have written it. */
async function writeLock(dir: string, fields: Partial<StateDirLockHolder>): Promise<void> {
  const record: StateDirLockHolder = {
    pid: 1, hostId: 'old-host', hostname: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z', procStart: null, bootId: null, nonce: `old-${Math.random()}`, ...fields,
  };
  await writeFile(stateDirLockPath(dir), `${JSON.stringify(record)}\n`);
}

describe('StateDirLock', () => {
  it('refuses a second lock on the same dir in one process, naming the pid, without writing anything; free again after release', async (t) => {
    const dir = await tempDir(t);
    const first = await StateDirLock.acquire(dir, { hostId: 'one' });
    const before = await readFile(first.file, 'utf8');
    await assert.rejects(StateDirLock.acquire(dir, { hostId: 'two' }), isLocked(process.pid));
    assert.equal(await readFile(first.file, 'utf8'), before, 'the holder\'s lock file is untouched');
    assert.deepEqual(await readdir(dir), ['host.lock'], 'the refused attempt left nothing behind');
    assert.equal((await holderIn(dir)).hostId, 'one');

    await first.release();
    await first.release();
    assert.deepEqual(await readdir(dir), [], 'release removes the lock file, once');
    const second = await StateDirLock.acquire(dir, { hostId: 'two' });
    t.after(() => second.release());
    assert.equal((await holderIn(dir)).hostId, 'two');
  });

  it('records pid, host id, hostname, start time and the process start time', async (t) => {
    const dir = await tempDir(t);
    const lock = await StateDirLock.acquire(dir, { hostId: 'rec' });
    t.after(() => lock.release());
    const holder = await holderIn(dir);
    assert.equal(holder.pid, process.pid);
    assert.equal(holder.hostId, 'rec');
    assert.equal(holder.hostname, os.hostname());
    assert.ok(!Number.isNaN(Date.parse(holder.startedAt)));
    assert.equal(holder.procStart, startTimeOf(process.pid));
  });

  it('takes over a stale lock whose process is gone', async (t) => {
    const dir = await tempDir(t);
    await writeLock(dir, { pid: await deadPid() });
    const lock = await StateDirLock.acquire(dir, { hostId: 'next' });
    t.after(() => lock.release());
    assert.equal((await holderIn(dir)).nonce, lock.holder.nonce);
    assert.deepEqual(await readdir(dir), ['host.lock'], 'no claim or temporary file is left');
  });

  it('takes over a lock whose pid now belongs to a process that started later (pid reuse)', async (t) => {
    const dir = await tempDir(t);
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    t.after(() => void sleeper.kill('SIGKILL'));
    const pid = sleeper.pid ?? assert.fail('no pid');
    await writeLock(dir, { pid, procStart: String(Number(startTimeOf(pid)) - 1) });
    const lock = await StateDirLock.acquire(dir, { hostId: 'next' });
    t.after(() => lock.release());
    assert.equal((await holderIn(dir)).pid, process.pid);
  });

  it('takes over a lock with our own pid that this process never took (pid 1 in a restarted container)', async (t) => {
    const dir = await tempDir(t);
    await writeLock(dir, { pid: process.pid, procStart: startTimeOf(process.pid) });
    const lock = await StateDirLock.acquire(dir, { hostId: 'next' });
    t.after(() => lock.release());
    assert.equal((await holderIn(dir)).nonce, lock.holder.nonce);
  });

  it('keeps a lock held by a live process, and one from a previous boot counts as gone', async (t) => {
    const dir = await tempDir(t);
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    t.after(() => void sleeper.kill('SIGKILL'));
    const pid = sleeper.pid ?? assert.fail('no pid');
    await writeLock(dir, { pid, procStart: startTimeOf(pid) });
    await assert.rejects(StateDirLock.acquire(dir, { hostId: 'next' }), isLocked(pid));

    await writeLock(dir, { pid, procStart: startTimeOf(pid), bootId: 'another-boot' });
    const lock = await StateDirLock.acquire(dir, { hostId: 'next' });
    t.after(() => lock.release());
  });

  it('keeps a lock written on another machine, and says how to clear it', async (t) => {
    const dir = await tempDir(t);
    await writeLock(dir, { pid: await deadPid(), hostname: 'elsewhere.example' });
    await assert.rejects(StateDirLock.acquire(dir, { hostId: 'next' }), (err: unknown) =>
      isWorkerManagerError(err) && err.code === 'HOST_ERR_STATE_DIR_LOCKED' && /another machine \(elsewhere\.example\)/.test(err.message) && err.message.includes(stateDirLockPath(dir)));
  });

  it('takes over a damaged lock file', async (t) => {
    const dir = await tempDir(t);
    await writeFile(stateDirLockPath(dir), '{"pid": 12');
    const lock = await StateDirLock.acquire(dir, { hostId: 'next' });
    t.after(() => lock.release());
    assert.equal((await holderIn(dir)).nonce, lock.holder.nonce);
  });

  it('release leaves a lock that is no longer its own', async (t) => {
    const dir = await tempDir(t);
    const lock = await StateDirLock.acquire(dir, { hostId: 'mine' });
    await writeLock(dir, { pid: process.pid, nonce: 'someone-else' });
    await lock.release();
    assert.equal((await holderIn(dir)).nonce, 'someone-else');
  });

  it('of many takers racing for one stale lock in a process, exactly one wins', async (t) => {
    const dir = await tempDir(t);
    await writeLock(dir, { pid: await deadPid() });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => StateDirLock.acquire(dir, { hostId: `racer-${i}` })));
    const won = results.filter((r): r is PromiseFulfilledResult<StateDirLock> => r.status === 'fulfilled').map((r) => r.value);
    t.after(() => Promise.all(won.map((l) => l.release())));
    assert.equal(won.length, 1, `winners: ${won.map((l) => l.holder.hostId).join(', ')}`);
    for (const r of results) if (r.status === 'rejected') assert.ok(isLocked(process.pid)(r.reason), String(r.reason));
    assert.equal((await holderIn(dir)).nonce, won[0]?.holder.nonce);
    assert.deepEqual(await readdir(dir), ['host.lock']);
  });

  it('of processes racing for one stale lock, exactly one wins and the others are refused naming it', { timeout: budget(120_000) }, async (t) => {
    const dir = await tempDir(t);
    await writeLock(dir, { pid: await deadPid() });
    // Each process loads the lock module, says ready, takes the lock when told to go, and holds it until stdin ends.
    const script = `
      const { StateDirLock } = await import(${JSON.stringify(path.join(repoRoot, 'host/src/StateDirLock.ts'))});
      process.stdout.write('ready\\n');
      process.stdin.once('data', async () => {
        try {
          const lock = await StateDirLock.acquire(${JSON.stringify(dir)}, { hostId: 'p' + process.pid });
          process.stdout.write('won\\n');
          process.stdin.once('end', () => void lock.release());
        } catch (error) {
          process.stdout.write('lost ' + error.code + ' ' + error.message + '\\n');
          process.exit(0);
        }
      });`;
    const children: Array<{ child: ChildProcess; out: string }> = [];
    for (let i = 0; i < 6; i++) {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'] });
      const entry = { child, out: '' };
      child.stdout?.on('data', (d: Buffer) => (entry.out += d.toString()));
      children.push(entry);
      t.after(() => void child.kill('SIGKILL'));
    }
    await waitFor(() => children.every((c) => c.out.includes('ready')), () => `every process to load (${children.map((c) => c.out).join('|')})`, 60_000);
    for (const c of children) c.child.stdin?.write('go\n');
    await waitFor(() => children.every((c) => /won|lost/.test(c.out)), () => `every process to try (${children.map((c) => c.out).join('|')})`, 60_000);

    const winners = children.filter((c) => c.out.includes('won'));
    assert.equal(winners.length, 1, children.map((c) => c.out).join('|'));
    const winnerPid = winners[0]?.child.pid;
    assert.equal((await holderIn(dir)).pid, winnerPid);
    for (const c of children.filter((x) => x !== winners[0])) assert.match(c.out, new RegExp(`lost HOST_ERR_STATE_DIR_LOCKED .*pid ${winnerPid}`));

    const done = Promise.all(children.map((c) => new Promise((resolve) => (c.child.exitCode === null ? c.child.once('close', resolve) : resolve(undefined)))));
    for (const c of children) c.child.stdin?.end();
    await within(done, 'the processes to exit');
    assert.deepEqual(await readdir(dir), [], 'the winner released its lock and nothing else is left');
  });
});
