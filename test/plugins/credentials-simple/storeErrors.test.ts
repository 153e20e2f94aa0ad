import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-simple';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { FAST_SCRYPT, fileHash, harness, keyFile, rejection, tempDir } from './helpers.ts';

type Proxy = PluginHarness<'credentials'>['proxy'];

/** Every operation against a store the caller cannot open; each must fail with `code` and `reason`. */
function everyOperation(p: Proxy): Array<[string, () => Promise<unknown>]> {
  return [
    ['getSecret', () => p.getSecret({ name: 'db' })],
    ['getSecret by version', () => p.getSecret({ name: 'db', version: '1' })],
    ['listVersions', () => p.listVersions({ name: 'db' })],
    ['describe', () => p.describe({ name: 'db' })],
    ['putSecret', () => p.putSecret({ name: 'db', value: 'replacement' })],
    ['putSecret new name', () => p.putSecret({ name: 'other', value: 'replacement' })],
    ['createPendingVersion', () => p.createPendingVersion({ name: 'db', value: 'replacement' })],
    ['testVersion', () => p.testVersion({ name: 'db', version: '1' })],
    ['promoteVersion', () => p.promoteVersion({ name: 'db', version: '1' })],
    ['revokeVersion', () => p.revokeVersion({ name: 'db', version: '1' })],
  ];
}

async function storeWithOneSecret(t: TestContext): Promise<{ dir: string; store: string; key: string; h: PluginHarness<'credentials'> }> {
  const dir = await tempDir(t);
  const key = await keyFile(dir, 'key', 'right-key-'.repeat(4));
  const h = await harness(t, dir, key);
  await h.proxy.putSecret({ name: 'db', value: 'the-value' });
  return { dir, store: path.join(dir, 'secrets.json'), key, h };
}

describe('credentials-simple refuses a wrong key or a damaged store, and never overwrites it', () => {
  it('a wrong key gives WM_ERR_CONFIGURATION reason wrong-key for every operation; the file is unchanged', async (t) => {
    const { dir, store } = await storeWithOneSecret(t);
    const before = await fileHash(store);
    const wrong = await harness(t, dir, await keyFile(dir, 'wrong', 'wrong-key-'.repeat(4)));
    for (const [what, call] of everyOperation(wrong.proxy)) {
      const e = await rejection(call);
      assert.equal(e.code, 'WM_ERR_CONFIGURATION', `${what}: ${e.message}`);
      assert.equal(e.details?.['reason'], 'wrong-key', what);
    }
    assert.equal(await fileHash(store), before);
    assert.equal(existsSync(`${store}.lock`), false, 'a refused write releases the lock');
  });

  it('a truncated store gives reason corrupt-store for every operation; the file is unchanged', async (t) => {
    const { store, h } = await storeWithOneSecret(t);
    const full = await readFile(store);
    for (const length of [0, 1, Math.floor(full.length / 2), full.length - 3]) {
      await writeFile(store, full.subarray(0, length));
      const before = await fileHash(store);
      for (const [what, call] of everyOperation(h.proxy)) {
        const e = await rejection(call);
        assert.equal(e.code, 'WM_ERR_CONFIGURATION', `${length} bytes, ${what}: ${e.message}`);
        assert.equal(e.details?.['reason'], 'corrupt-store', `${length} bytes, ${what}`);
      }
      assert.equal(await fileHash(store), before, `${length} bytes`);
    }
  });

  it('a flipped byte anywhere gives reason corrupt-store (never wrong-key, never empty); the file is unchanged', async (t) => {
    const { store, h } = await storeWithOneSecret(t);
    const full = await readFile(store);
    const positions = [0, 5, 20, 60, Math.floor(full.length / 3), Math.floor(full.length / 2), full.length - 40, full.length - 3];
    for (const at of positions) {
      const damaged = Buffer.from(full);
      damaged[at] = (damaged[at] as number) ^ 0x01;
      await writeFile(store, damaged);
      for (const [what, call] of everyOperation(h.proxy)) {
        const e = await rejection(call);
        assert.equal(e.code, 'WM_ERR_CONFIGURATION', `byte ${at}, ${what}: ${e.message}`);
        assert.equal(e.details?.['reason'], 'corrupt-store', `byte ${at}, ${what}`);
      }
      assert.ok((await readFile(store)).equals(damaged), `byte ${at}: not rewritten`);
    }
    await writeFile(store, full);
    assert.equal((await h.proxy.getSecret({ name: 'db' })).value, 'the-value', 'the original file still opens');
  });

  it('an altered ciphertext whose checksum was recomputed still fails authentication (reason corrupt-store)', async (t) => {
    const { store, h } = await storeWithOneSecret(t);
    const outer = JSON.parse(await readFile(store, 'utf8')) as { format: string; sha256: string; body: string };
    const body = JSON.parse(outer.body) as { secrets: Record<string, { versions: Array<{ sealed: { ciphertext: string } }> }> };
    const sealed = body.secrets['db']?.versions[0]?.sealed;
    assert.ok(sealed);
    const bytes = Buffer.from(sealed.ciphertext, 'base64');
    bytes[0] = (bytes[0] as number) ^ 0x80;
    sealed.ciphertext = bytes.toString('base64');
    const text = JSON.stringify(body);
    const { createHash } = await import('node:crypto');
    await writeFile(store, JSON.stringify({ ...outer, body: text, sha256: createHash('sha256').update(text).digest('hex') }));
    const e = await rejection(() => h.proxy.getSecret({ name: 'db' }));
    assert.equal(e.code, 'WM_ERR_CONFIGURATION');
    assert.equal(e.details?.['reason'], 'corrupt-store');
    assert.deepEqual([e.details?.['name'], e.details?.['version']], ['db', '1']);
  });

  it('oversized and malformed values get WM_ERR_SECRET_SIZE_LIMIT / WM_ERR_SECRET_INVALID_FORMAT; the file is unchanged', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)), { maxValueBytes: 64, maxKeys: 2 });
    await h.proxy.putSecret({ name: 'db', value: 'ok' });
    const store = path.join(dir, 'secrets.json');
    const before = await fileHash(store);
    const cases: Array<[string, () => Promise<unknown>, string]> = [
      ['string over the limit', () => h.proxy.putSecret({ name: 'db', value: 'x'.repeat(65) }), 'WM_ERR_SECRET_SIZE_LIMIT'],
      ['multi-byte characters count as bytes', () => h.proxy.putSecret({ name: 'db', value: 'é'.repeat(33) }), 'WM_ERR_SECRET_SIZE_LIMIT'],
      ['map over the limit', () => h.proxy.putSecret({ name: 'db', value: { a: 'y'.repeat(60) } }), 'WM_ERR_SECRET_SIZE_LIMIT'],
      ['pending over the limit', () => h.proxy.createPendingVersion({ name: 'db', value: 'x'.repeat(65) }), 'WM_ERR_SECRET_SIZE_LIMIT'],
      ['empty string', () => h.proxy.putSecret({ name: 'db', value: '' }), 'WM_ERR_SECRET_INVALID_FORMAT'],
      ['NUL character', () => h.proxy.putSecret({ name: 'db', value: 'a\u0000b' }), 'WM_ERR_SECRET_INVALID_FORMAT'],
      ['empty map', () => h.proxy.putSecret({ name: 'db', value: {} }), 'WM_ERR_SECRET_INVALID_FORMAT'],
      ['too many keys', () => h.proxy.putSecret({ name: 'db', value: { a: '1', b: '2', c: '3' } }), 'WM_ERR_SECRET_INVALID_FORMAT'],
      ['bad key name', () => h.proxy.putSecret({ name: 'db', value: { 'has space': '1' } }), 'WM_ERR_SECRET_INVALID_FORMAT'],
    ];
    for (const [what, call, code] of cases) {
      const e = await rejection(call);
      assert.equal(e.code, code, `${what}: ${e.message}`);
      assert.equal(e.details?.['name'], 'db', what);
    }
    assert.equal(await fileHash(store), before);
    assert.equal((await h.proxy.getSecret({ name: 'db' })).value, 'ok');
  });

  it('a missing, short or doubly named key fails setup with reason no-key, naming the source but not the value', async (t) => {
    const dir = await tempDir(t);
    const cases: Array<[string, Record<string, unknown>]> = [
      ['neither keyFile nor keyEnv', {}],
      ['both', { keyFile: 'key', keyEnv: 'WM_TEST_CREDS_UNSET' }],
      ['unset variable', { keyEnv: 'WM_TEST_CREDS_UNSET' }],
      ['missing file', { keyFile: path.join(dir, 'absent') }],
      ['short key', { keyFile: await keyFile(dir, 'short', 'short-key') }],
    ];
    delete process.env['WM_TEST_CREDS_UNSET'];
    for (const [what, config] of cases) {
      const e = await rejection(() => createPluginHarness(plugin, { stateDir: dir, config: { scrypt: FAST_SCRYPT, ...config } }));
      assert.equal(e.code, 'WM_ERR_CONFIGURATION', `${what}: ${e.message}`);
      assert.equal(e.details?.['reason'], 'no-key', what);
      assert.ok(!e.message.includes('short-key'), what);
    }
  });
});
