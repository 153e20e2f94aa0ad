import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { budget } from '../../helpers/waitFor.ts';
import { harness, keyFile, tempDir } from './helpers.ts';

describe('credentials-simple with several writers on one store', () => {
  it('two instances writing at once lose no version (the store lock serialises read-modify-write)', { timeout: budget(120_000) }, async (t) => {
    const dir = await tempDir(t);
    const key = await keyFile(dir, 'key', 'k'.repeat(32));
    // The last of 100 queued writes waits for the 99 before it: seconds on a loaded machine, past the 10 s default.
    const config = { maxVersions: 1000, lockTimeoutMs: 120_000 };
    const a = await harness(t, dir, key, config);
    const b = await harness(t, dir, key, config);
    const n = 25;
    const writes: Array<Promise<{ version: string }>> = [];
    for (let i = 0; i < n; i += 1) {
      writes.push(a.proxy.putSecret({ name: 'shared', value: `a-${i}` }));
      writes.push(b.proxy.putSecret({ name: 'shared', value: `b-${i}` }));
      writes.push(a.proxy.putSecret({ name: `a-${i}`, value: `a-${i}` }));
      writes.push(b.proxy.putSecret({ name: `b-${i}`, value: `b-${i}` }));
    }
    const results = await Promise.all(writes);
    const shared = results.filter((_, i) => i % 4 < 2).map((r) => r.version);
    assert.equal(new Set(shared).size, 2 * n, 'every write got its own version');

    const versions = await a.proxy.listVersions({ name: 'shared' });
    assert.deepEqual(
      versions.map((v) => v.version).sort((x, y) => Number(x) - Number(y)),
      Array.from({ length: 2 * n }, (_, i) => String(i + 1)),
    );
    assert.equal(versions.filter((v) => v.status === 'active').length, 1);
    const values = new Set<unknown>();
    for (const v of versions) values.add((await b.proxy.getSecret({ name: 'shared', version: v.version })).value);
    assert.equal(values.size, 2 * n, 'each version holds the value written with it');
    for (let i = 0; i < n; i += 1) {
      assert.equal((await b.proxy.getSecret({ name: `a-${i}` })).value, `a-${i}`);
      assert.equal((await a.proxy.getSecret({ name: `b-${i}` })).value, `b-${i}`);
    }
    assert.equal(existsSync(path.join(dir, 'secrets.json.lock')), false, 'the lock is released');
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left behind');
  });

  it('a lock left by a dead writer is taken over once stale', { timeout: budget(60_000) }, async (t) => {
    const dir = await tempDir(t);
    const key = await keyFile(dir, 'key', 'k'.repeat(32));
    const { writeFile, utimes } = await import('node:fs/promises');
    const lock = path.join(dir, 'secrets.json.lock');
    await writeFile(lock, '{"pid":0}');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const h = await harness(t, dir, key, { lockStaleMs: 1_000 });
    assert.equal((await h.proxy.putSecret({ name: 'x', value: 'y' })).version, '1');
  });

  it('a lock held by a live writer makes a write wait, then fail with WM_ERR_TIMEOUT, leaving the store as it was', { timeout: budget(60_000) }, async (t) => {
    const dir = await tempDir(t);
    const key = await keyFile(dir, 'key', 'k'.repeat(32));
    // The deadline under test (200 ms) is far shorter than the 30 s after which the held lock would count as stale.
    const h = await harness(t, dir, key, { lockTimeoutMs: 200 });
    await h.proxy.putSecret({ name: 'x', value: 'y' });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, 'secrets.json.lock'), '{"pid":0}');
    const started = Date.now();
    await assert.rejects(h.proxy.putSecret({ name: 'x', value: 'z' }), (e: { code?: string }) => e.code === 'WM_ERR_TIMEOUT');
    assert.ok(Date.now() - started >= 200);
    assert.equal((await h.proxy.getSecret({ name: 'x' })).value, 'y', 'reads do not need the lock');
  });
});
