import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import { describe, it } from 'node:test';
import pino from 'pino';
import { hostError } from '../../../host/src/errors.ts';
import { LeaseHolders, type LeaseKey } from '../../../host/src/secrets/LeaseHolders.ts';

const L1: LeaseKey = { credentials: 'vault', name: 'db/app', version: 'lease-0000000000000001' };
const L2: LeaseKey = { credentials: 'vault', name: 'db/app', version: 'lease-0000000000000002' };

async function stateDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-leases-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A table over `dir` whose releases are recorded (and fail while `failing` is set), with its log lines. */
function table(dir: string, options: { failing?: () => boolean } = {}): { holders: LeaseHolders; released: LeaseKey[]; dropped: LeaseKey[]; logs: string[] } {
  const released: LeaseKey[] = [];
  const dropped: LeaseKey[] = [];
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const holders = new LeaseHolders({
    stateDir: dir,
    logger: pino({ level: 'debug' }, sink),
    onRelease: (lease) => dropped.push(lease),
    release: async (lease) => {
      if (options.failing?.() === true) throw hostError('HOST_ERR_INSTANCE_UNAVAILABLE', "instance 'vault' is restarting", { details: { instance: 'vault' } });
      released.push(lease);
    },
  });
  return { holders, released, dropped, logs };
}

const onDisk = async (dir: string): Promise<unknown> => JSON.parse(await readFile(path.join(dir, 'secrets', 'leases.json'), 'utf8'));

describe('LeaseHolders', () => {
  it('releases a lease once its last holder is forgotten, and not before', async (t) => {
    const dir = await stateDir(t);
    const { holders, released } = table(dir);
    await holders.load();
    await holders.record([L1], 'a');
    await holders.record([L1], 'b');
    await holders.record([L2], 'b');
    await holders.forget('a');
    await holders.settled();
    assert.deepEqual(released, [], 'b still holds both');
    assert.deepEqual(await onDisk(dir), { format: 1, leases: [{ ...L1, workers: ['b'] }, { ...L2, workers: ['b'] }] });
    await holders.forget('b');
    await holders.settled();
    assert.deepEqual(released, [L1, L2]);
    assert.deepEqual(holders.all(), []);
    assert.deepEqual(await onDisk(dir), { format: 1, leases: [] });
    await holders.forget('b');
    await holders.settled();
    assert.equal(released.length, 2, 'released once');
  });

  it('holds back the release while a resolution of the secret is under way, and drops the cached value before releasing', async (t) => {
    const dir = await stateDir(t);
    const { holders, released, dropped } = table(dir);
    await holders.load();
    const done = holders.begin([{ credentials: 'vault', name: 'db/app' }]);
    const other = holders.begin([{ credentials: 'vault', name: 'db/other' }]);
    // Fetched by the resolution, handed to no worker yet.
    await holders.record([L1]);
    holders.sweep();
    await holders.settled();
    assert.deepEqual(released, [], 'its resolution may still hand it to a worker');
    other();
    await holders.settled();
    assert.deepEqual(released, [], 'another secret\'s resolution does not count');
    done();
    assert.deepEqual(dropped, [L1], 'the cached value is dropped as the release is decided, before it runs');
    await holders.settled();
    assert.deepEqual(released, [L1]);
    done();
    assert.equal(released.length, 1, 'done twice counts once');
  });

  it('a release that fails stays in the table, survives a restart and is tried again', async (t) => {
    const dir = await stateDir(t);
    let failing = true;
    const first = table(dir, { failing: () => failing });
    await first.holders.load();
    await first.holders.record([L1], 'a');
    await first.holders.forget('a');
    await first.holders.settled();
    assert.deepEqual(first.released, []);
    assert.ok(first.logs.some((l) => l.includes('secret lease could not be released') && l.includes('HOST_ERR_INSTANCE_UNAVAILABLE')));
    assert.deepEqual(await onDisk(dir), { format: 1, leases: [{ ...L1, workers: [] }] });

    failing = false;
    const restarted = table(dir);
    await restarted.holders.load();
    assert.deepEqual(restarted.holders.all(), [{ ...L1, workers: [] }]);
    await restarted.holders.retain(new Set());
    await restarted.holders.settled();
    assert.deepEqual(restarted.released, [L1]);
    assert.deepEqual(await onDisk(dir), { format: 1, leases: [] });
  });

  it('at start, a holder whose worker has no recorded consumers (never created) lets go of its lease', async (t) => {
    const dir = await stateDir(t);
    const before = table(dir);
    await before.holders.load();
    await before.holders.record([L1], 'created');
    await before.holders.record([L2], 'crashed-before-recording');
    const after = table(dir);
    await after.holders.load();
    await after.holders.retain(new Set(['created']));
    await after.holders.settled();
    assert.deepEqual(after.released, [L2]);
    assert.deepEqual(after.holders.all(), [{ ...L1, workers: ['created'] }]);
  });

  it('a damaged table is moved aside: the host starts without it, and says so', async (t) => {
    const dir = await stateDir(t);
    await mkdir(path.join(dir, 'secrets'), { recursive: true });
    await writeFile(path.join(dir, 'secrets', 'leases.json'), '{"format":1,"leases":[{"credentials":1}]}');
    const { holders, logs } = table(dir);
    await holders.load();
    assert.deepEqual(holders.all(), []);
    const files = await readdir(path.join(dir, 'secrets'));
    assert.ok(files.some((f) => f.startsWith('leases.json.damaged-')), files.join(', '));
    assert.ok(!files.includes('leases.json'));
    assert.ok(logs.some((l) => l.includes('the secret lease table is damaged')));
  });
});
