import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { harness, keyFile, tempDir } from './helpers.ts';

const SECRET = 'plaintext-marker-7c1d3b9e';
const KEY = 'key-material-marker-44aa9021';

describe('credentials-simple keeps values out of files, errors and logs', () => {
  it('after every operation and every error, no file in the state dir and no error or log holds a value or the key', async (t) => {
    const dir = await tempDir(t);
    const keys = await tempDir(t, 'wm-creds-key-');
    const h = await harness(t, dir, await keyFile(keys, 'key', KEY), { maxValueBytes: 256 });
    const errors: unknown[] = [];
    const attempt = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    };
    await h.proxy.putSecret({ name: 'db', value: SECRET });
    await h.proxy.putSecret({ name: 'map', value: { password: SECRET, user: `${SECRET}-user` } });
    const pending = await h.proxy.createPendingVersion({ name: 'db', value: `${SECRET}-next` });
    await h.proxy.testVersion({ name: 'db', version: pending.version });
    await h.proxy.promoteVersion({ name: 'db', version: pending.version });
    await h.proxy.revokeVersion({ name: 'db', version: 'previous' });
    await h.proxy.listVersions({ name: 'db' });
    await h.proxy.describe({ name: 'map' });
    assert.equal((await h.proxy.getSecret({ name: 'db' })).value, `${SECRET}-next`, 'the marker is really stored');

    await attempt(() => h.proxy.putSecret({ name: 'db', value: SECRET.repeat(20) }));
    await attempt(() => h.proxy.putSecret({ name: 'db', value: `${SECRET}\u0000` }));
    await attempt(() => h.proxy.putSecret({ name: 'db', value: { [`${SECRET} key`]: SECRET } }));
    await attempt(() => h.proxy.createPendingVersion({ name: 'missing', value: SECRET }));
    await attempt(() => h.proxy.getSecret({ name: 'db', version: '1' }));
    const wrong = await harness(t, dir, await keyFile(keys, 'wrong', `${KEY}-wrong`));
    await attempt(() => wrong.proxy.putSecret({ name: 'db', value: SECRET }));
    await attempt(() => wrong.proxy.getSecret({ name: 'db' }));
    assert.equal(errors.length, 7, 'every bad call failed');

    const files = await readdir(dir);
    assert.ok(files.includes('secrets.json'));
    for (const name of files) {
      const bytes = await readFile(path.join(dir, name));
      assert.ok(!bytes.includes(SECRET), `${name} holds a value`);
      assert.ok(!bytes.includes(KEY), `${name} holds the key`);
      assert.ok(!bytes.includes(Buffer.from(SECRET).toString('base64').slice(0, 16)), `${name} holds a value in base64`);
    }
    for (const error of errors) {
      const e = error as { toJSON?: () => unknown; message: string; stack?: string };
      const text = `${e.message}\n${e.stack ?? ''}\n${JSON.stringify(e.toJSON?.() ?? e)}`;
      assert.ok(!text.includes(SECRET) && !text.includes(KEY), text);
    }
    assert.ok(h.logs.length >= 5, 'the plugin logs its writes');
    for (const log of [...h.logs, ...wrong.logs]) {
      const text = JSON.stringify(log);
      assert.ok(!text.includes(SECRET) && !text.includes(KEY), text);
    }
  });
});
