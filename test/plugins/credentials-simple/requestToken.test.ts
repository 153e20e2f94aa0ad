import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { harness, keyFile, rejection, tempDir } from './helpers.ts';

const TOKEN = 'retry-token-5d0c2a7e91';
const VALUE = 'retried-value-b83f16c4';

describe('credentials-simple request tokens (secret.write.idempotent)', () => {
  it('keeps only keyed digests of the token and the value in the store, and a retry from another instance finds them', async (t) => {
    const dir = await tempDir(t);
    const key = await keyFile(dir, 'key', 'k'.repeat(32));
    const h = await harness(t, dir, key);
    const v1 = await h.proxy.putSecret({ name: 'db', value: VALUE, requestToken: TOKEN });
    const file = await readFile(path.join(dir, 'secrets.json'), 'utf8');
    assert.ok(!file.includes(TOKEN), 'the token is not stored in clear');
    assert.ok(!file.includes(VALUE), 'the value is not stored in clear');
    assert.match(file, /\\"request\\":\{\\"op\\":\\"put\\",\\"token\\":\\"[A-Za-z0-9+/=]{44}\\",\\"value\\":\\"[A-Za-z0-9+/=]{44}\\"\}/, 'digests are recorded with the version');

    // Another instance over the same store (another thread, or after a restart) recognises the retry.
    const other = await harness(t, dir, key);
    assert.equal((await other.proxy.putSecret({ name: 'db', value: VALUE, requestToken: TOKEN })).version, v1.version);
    assert.equal((await other.proxy.listVersions({ name: 'db' })).length, 1);
  });

  it('a token used by putSecret is WM_ERR_CONFLICT for createPendingVersion, and the reverse', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    await h.proxy.putSecret({ name: 'db', value: VALUE, requestToken: TOKEN });
    const e1 = await rejection(() => h.proxy.createPendingVersion({ name: 'db', value: VALUE, requestToken: TOKEN }));
    assert.equal(e1.code, 'WM_ERR_CONFLICT');
    assert.equal(e1.details?.['reason'], 'request-token-reused');
    const pendingToken = 'pending-token-0001';
    await h.proxy.createPendingVersion({ name: 'db', requestToken: pendingToken });
    const e2 = await rejection(() => h.proxy.putSecret({ name: 'db', value: VALUE, requestToken: pendingToken }));
    assert.equal(e2.code, 'WM_ERR_CONFLICT');
    for (const e of [e1, e2]) {
      assert.ok(!JSON.stringify(e).includes(VALUE) && !e.message.includes(VALUE), 'no value in the error');
      assert.ok(!JSON.stringify(e).includes(TOKEN) && !e.message.includes(pendingToken), 'no token in the error');
    }
    assert.equal((await h.proxy.listVersions({ name: 'db' })).length, 2);
  });

  it('a key/value map built in another key order is the same value', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    const v1 = await h.proxy.putSecret({ name: 'db', value: { user: 'app', password: VALUE }, requestToken: TOKEN });
    const retry = await h.proxy.putSecret({ name: 'db', value: { password: VALUE, user: 'app' }, requestToken: TOKEN });
    assert.equal(retry.version, v1.version);
    assert.equal((await h.proxy.listVersions({ name: 'db' })).length, 1);
  });

  it('tokens are pruned with their versions: a retry whose version was dropped is a new write', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)), { maxVersions: 2 });
    const first = await h.proxy.putSecret({ name: 'db', value: VALUE, requestToken: TOKEN });
    await h.proxy.putSecret({ name: 'db', value: `${VALUE}-2` });
    await h.proxy.putSecret({ name: 'db', value: `${VALUE}-3` });
    const versions = await h.proxy.listVersions({ name: 'db' });
    assert.equal(versions.length, 2, 'maxVersions bounds the versions, and with them the recorded tokens');
    assert.ok(!versions.some((v) => v.version === first.version), 'the tokened version was pruned');
    const again = await h.proxy.putSecret({ name: 'db', value: VALUE, requestToken: TOKEN });
    assert.notEqual(again.version, first.version);
    const file = await readFile(path.join(dir, 'secrets.json'), 'utf8');
    assert.equal(file.match(/\\"request\\":/g)?.length, 1, 'one recorded request: the pruned one is gone');
  });
});
