import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { budget, within } from '../../helpers/waitFor.ts';
import { openHarness, tempStateDir, waitFor } from './helpers.ts';

// Regression: a create made the worker's folder first and wrote its meta.json last, so a thread killed in between
// left a folder under workers/ that no listing, adoption or garbage collection could place, for ever; the next create
// of that id moved it to trash/, which nothing ever emptied.

const SLEEP = { command: ['sleep', '600'] };

/** Worker folders without a meta.json: what no thread can ever place. */
async function unrecorded(stateDir: string): Promise<string[]> {
  const ids = await readdir(path.join(stateDir, 'workers')).catch(() => [] as string[]);
  return ids.filter((id) => !existsSync(path.join(stateDir, 'workers', id, 'meta.json')));
}

/**
 * Holds the admission lock of the harness's instance, as a thread in the middle of an admission does, so that a create
 * stops right after claiming its worker; refreshed so that it is never taken over as stale. Returns the release.
 */
async function holdAdmission(t: TestContext, stateDir: string): Promise<() => Promise<void>> {
  const [owner] = await readdir(path.join(stateDir, 'admission'));
  assert.ok(owner !== undefined, 'the harness made its admission folder');
  const lock = path.join(stateDir, 'admission', owner, 'lock');
  await writeFile(lock, '', { flag: 'wx' });
  const refresh = setInterval(() => void utimes(lock, new Date(), new Date()).catch(() => {}), 1_000);
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    clearInterval(refresh);
    await rm(lock, { force: true });
  };
  t.after(release);
  return release;
}

/** True once a create of `workerId` is under way (before that, the worker does not exist). */
async function underWay(h: PluginHarness<'provider'>, workerId: string): Promise<boolean> {
  try {
    return (await h.proxy.getWorkerStatus({ workerId })).phase === 'Creating';
  } catch {
    return false;
  }
}

/** Sets a folder's times `ms` in the past: what a folder left that long ago looks like. */
async function age(p: string, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms);
  await utimes(p, then, then);
}

describe('process plugin: no worker folder without its meta.json', { timeout: budget(180_000) }, () => {
  it('a create held in the middle (at admission) shows no folder under workers/; the worker appears with its meta.json', async (t) => {
    const h = await openHarness(t);
    const release = await holdAdmission(t, h.stateDir);
    const creating = h.proxy.createWorker({ workerId: 'held', spec: SLEEP });
    creating.catch(() => {});
    // Every thread knows a create of the id is under way, whatever the layout on disk.
    await waitFor(() => underWay(h, 'held'), "the create of 'held' to be under way");
    assert.deepEqual(await unrecorded(h.stateDir), [], 'no worker folder without meta.json while the create is held');
    assert.deepEqual(await h.proxy.listWorkers({}), [], 'nor a listed worker');
    await release();
    const w = await within(creating, "the create of 'held' to finish");
    assert.equal(w.state.phase, 'Running');
    assert.ok(existsSync(path.join(h.stateDir, 'workers', 'held', 'meta.json')));
    assert.deepEqual(await unrecorded(h.stateDir), []);
    assert.deepEqual(await readdir(path.join(h.stateDir, 'creating')), [], 'the claim is gone once the worker is recorded');
  });

  it('a thread killed in the middle of a create leaves nothing under workers/, and the next create of the id takes its claim over', async (t) => {
    const stateDir = await tempStateDir(t);
    const h = await openHarness(t, {}, stateDir);
    const release = await holdAdmission(t, stateDir);
    const thread = new Thread(new URL('./fixtures/tsWorker.mjs', import.meta.url), {
      workerData: { entry: new URL('./fixtures/harnessThread.ts', import.meta.url).href, stateDir, workers: [{ workerId: 'orphan', spec: SLEEP }] },
    });
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    thread.on('error', () => {});
    t.after(() => thread.terminate());
    await waitFor(() => underWay(h, 'orphan'), "the killed thread's create to be under way");
    await thread.terminate();
    await within(exited, 'the plugin thread to be gone');
    await release();
    assert.deepEqual(await unrecorded(stateDir), [], 'nothing under workers/ without meta.json');
    assert.deepEqual(await h.proxy.listWorkers({}), []);
    // The claim is the dead thread's until it is untouched for 10 s: then this create takes it over.
    const w = await h.proxy.createWorker({ workerId: 'orphan', spec: SLEEP });
    assert.equal(w.state.phase, 'Running');
    assert.deepEqual(await readdir(path.join(stateDir, 'creating')), []);
    assert.deepEqual(await readdir(path.join(stateDir, 'trash')), [], 'the claim taken over went through the trash and is gone');
  });

  it('a thread that starts removes what killed threads and older versions left: stale claims, folders without meta.json, the trash', async (t) => {
    const stateDir = await tempStateDir(t);
    // What an older version left: a worker folder with logs and a work folder, and no meta.json.
    const legacy = path.join(stateDir, 'workers', 'legacy');
    await mkdir(path.join(legacy, 'work'), { recursive: true });
    await writeFile(path.join(legacy, 'stdout.log'), 'output\n');
    await age(legacy, 60_000);
    // What a thread killed in the middle of a create left: its claim, with the folder it was putting together.
    const claim = path.join(stateDir, 'creating', 'half');
    await mkdir(path.join(claim, 'a1b2c3d4', 'work'), { recursive: true });
    await age(path.join(claim, 'a1b2c3d4'), 60_000);
    await age(claim, 60_000);
    // What a removal cut short left in the trash.
    await mkdir(path.join(stateDir, 'trash', 'gone-1234abcd', 'work'), { recursive: true });
    await writeFile(path.join(stateDir, 'trash', 'gone-1234abcd', 'stderr.log'), 'x');
    // A fresh claim is a create under way on another thread: left alone.
    await mkdir(path.join(stateDir, 'creating', 'busy', 'e5f6a7b8'), { recursive: true });

    await openHarness(t, {}, stateDir);
    await waitFor(async () => (await unrecorded(stateDir)).length === 0, 'the folder without meta.json to be removed');
    await waitFor(async () => (await readdir(path.join(stateDir, 'trash'))).length === 0, 'the trash to be emptied');
    await waitFor(async () => !existsSync(claim), 'the stale claim to be removed');
    assert.ok(existsSync(path.join(stateDir, 'creating', 'busy')), 'a claim still in use stays');
  });

  it('terminate empties the trash', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'w', spec: SLEEP });
    // Left by a thread killed while it removed a folder it had moved there.
    await mkdir(path.join(h.stateDir, 'trash', 'w-deadbeef', 'work'), { recursive: true });
    await h.proxy.terminateWorker({ workerId: 'w', gracePeriodMs: 0 });
    assert.deepEqual(await readdir(path.join(h.stateDir, 'trash')), []);
  });
});
