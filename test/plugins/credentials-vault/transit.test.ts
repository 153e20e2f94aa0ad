import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { describe, it } from 'node:test';
import nodeVault from 'node-vault';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import type { VaultDouble } from '../../doubles/vault.ts';
import { harness, rejection, secretFile, startVault, tempDir, transitPolicy, visible } from './helpers.ts';

const KEY = 'wm-secrets';
/** A plaintext that must never show up anywhere but in the decrypt answer. */
const CANARY = 'canary-transit-plaintext-7d41c9';
const b64 = (text: string): string => Buffer.from(text).toString('base64');
const CANARY_B64 = b64(CANARY);

/** A Vault with a transit engine and key `wm-secrets`, and a plugin whose token holds `policies`. */
async function transitSetup(t: TestContext, policies: string[] = ['wm', 'transit'], options: { create?: boolean } = {}): Promise<{ vault: VaultDouble; h: PluginHarness<'credentials'> }> {
  const vault = await startVault(t);
  vault.mountTransit('transit').createKey(KEY);
  vault.setPolicy('transit', transitPolicy([KEY, 'wm-new'], 'transit', options));
  const dir = await tempDir(t);
  const h = await harness(t, vault, { auth: { method: 'token', token: { file: await secretFile(dir, 'token', vault.createToken({ policies })) } } });
  return { vault, h };
}

/** Nothing the caller or an operator can see holds the plaintext, in clear or base64. */
function assertNoPlaintext(...seen: unknown[]): void {
  const text = visible(seen);
  assert.ok(!text.includes(CANARY) && !text.includes(CANARY_B64), 'the plaintext shows');
}

describe('credentials-vault transit (credentials.transit) against the Vault double', () => {
  it('encrypt and decrypt round-trip through node-vault: a vault:v1: ciphertext that opens to the same bytes', async (t) => {
    const { vault, h } = await transitSetup(t);
    const sealed = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    assert.match(sealed.ciphertext, /^vault:v1:[A-Za-z0-9+/]+=*$/);
    assert.equal(sealed.keyVersion, 1);
    assert.ok(!sealed.ciphertext.includes(CANARY_B64));
    assert.deepEqual(await h.proxy.decrypt({ key: KEY, ciphertext: sealed.ciphertext }), { plaintext: CANARY_B64 });
    const again = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    assert.notEqual(again.ciphertext, sealed.ciphertext, 'a fresh nonce each time');
    assert.deepEqual(
      vault.requests.filter((r) => r.path.startsWith('transit/')).map((r) => `${r.method} ${r.path} ${r.status}`).slice(0, 2),
      [`POST transit/encrypt/${KEY} 200`, `POST transit/decrypt/${KEY} 200`],
    );
    assertNoPlaintext(h.logs);
  });

  it('rotateKey: new ciphertexts use the new version, a v1 ciphertext still opens, and rewrap moves it to the latest version', async (t) => {
    const { vault, h } = await transitSetup(t);
    const v1 = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    assert.deepEqual(await h.proxy.rotateKey({ key: KEY }), { latestVersion: 2 });
    assert.equal(vault.transit('transit').inspect(KEY)?.latestVersion, 2);
    const v2 = await h.proxy.encrypt({ key: KEY, plaintext: b64('second') });
    assert.equal(v2.keyVersion, 2);
    assert.match(v2.ciphertext, /^vault:v2:/);
    assert.deepEqual(await h.proxy.decrypt({ key: KEY, ciphertext: v1.ciphertext }), { plaintext: CANARY_B64 }, 'the old version still decrypts');
    const rewrapped = await h.proxy.rewrap({ key: KEY, ciphertext: v1.ciphertext });
    assert.equal(rewrapped.keyVersion, 2);
    assert.match(rewrapped.ciphertext, /^vault:v2:/);
    assert.deepEqual(await h.proxy.decrypt({ key: KEY, ciphertext: rewrapped.ciphertext }), { plaintext: CANARY_B64 });
    assert.deepEqual(await h.proxy.rotateKey({ key: KEY }), { latestVersion: 3 });
    assert.equal((await h.proxy.rewrap({ key: KEY, ciphertext: rewrapped.ciphertext })).keyVersion, 3, 'rewrap always goes to the latest');
    assertNoPlaintext(h.logs);
  });

  it('min_decryption_version is honoured: a ciphertext below it is WM_ERR_SECRET_VERSION_NOT_FOUND, one rewrapped before still opens', async (t) => {
    const { vault, h } = await transitSetup(t);
    const old = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    await h.proxy.rotateKey({ key: KEY });
    const moved = await h.proxy.rewrap({ key: KEY, ciphertext: old.ciphertext });
    // The operator retires version 1 (`vault write transit/keys/wm-secrets/config min_decryption_version=2`).
    const operator = nodeVault({ endpoint: vault.address, token: vault.rootToken });
    await operator.write(`transit/keys/${KEY}/config`, { min_decryption_version: 2 });
    assert.equal(vault.transit('transit').inspect(KEY)?.minDecryptionVersion, 2);
    for (const op of ['decrypt', 'rewrap'] as const) {
      const err = await rejection(() => h.proxy[op]({ key: KEY, ciphertext: old.ciphertext }));
      assert.equal(err.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND', op);
      assert.equal(err.details?.['reason'], 'key-version-retired');
      assert.deepEqual(err.details?.['vaultErrors'], ['ciphertext or signature version is disallowed by policy (too old)']);
      assertNoPlaintext(err);
    }
    assert.deepEqual(await h.proxy.decrypt({ key: KEY, ciphertext: moved.ciphertext }), { plaintext: CANARY_B64 });
  });

  it('an older Vault answers a rotation with 204: the plugin reads the key for its latest version', async (t) => {
    const { vault, h } = await transitSetup(t);
    vault.transit('transit').legacyRotate = true;
    assert.deepEqual(await h.proxy.rotateKey({ key: KEY }), { latestVersion: 2 });
    const calls = vault.requests.filter((r) => r.path.startsWith(`transit/keys/${KEY}`)).map((r) => `${r.method} ${r.path} ${r.status}`);
    assert.deepEqual(calls, [`POST transit/keys/${KEY}/rotate 204`, `GET transit/keys/${KEY} 200`]);
  });

  it('policies: an operation the token is not granted is WM_ERR_PERMISSION_DENIED; encrypt makes a missing key only with create', async (t) => {
    const { vault, h } = await transitSetup(t, ['wm']);
    for (const call of [
      () => h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 }),
      () => h.proxy.decrypt({ key: KEY, ciphertext: 'vault:v1:AAAA' }),
      () => h.proxy.rewrap({ key: KEY, ciphertext: 'vault:v1:AAAA' }),
      () => h.proxy.rotateKey({ key: KEY }),
    ]) {
      const err = await rejection(call);
      assert.equal(err.code, 'WM_ERR_PERMISSION_DENIED');
      assertNoPlaintext(err);
    }
    assert.equal(vault.transit('transit').inspect(KEY)?.latestVersion, 1, 'nothing rotated');

    // Vault's existence check: encrypting under a key that does not exist is a create.
    const updateOnly = await transitSetup(t);
    assert.equal((await rejection(() => updateOnly.h.proxy.encrypt({ key: 'wm-new', plaintext: CANARY_B64 }))).code, 'WM_ERR_PERMISSION_DENIED');
    assert.equal(updateOnly.vault.transit('transit').has('wm-new'), false);
    const withCreate = await transitSetup(t, ['wm', 'transit'], { create: true });
    const made = await withCreate.h.proxy.encrypt({ key: 'wm-new', plaintext: CANARY_B64 });
    assert.equal(made.keyVersion, 1);
    assert.equal(withCreate.vault.transit('transit').has('wm-new'), true);
    assertNoPlaintext(h.logs, updateOnly.h.logs, withCreate.h.logs);
  });

  it('a key that does not exist is WM_ERR_SECRET_NOT_FOUND; a ciphertext altered, from another key or not Vault\'s is WM_ERR_VALIDATION', async (t) => {
    const { vault, h } = await transitSetup(t, ['wm', 'transit', 'other']);
    vault.setPolicy('other', transitPolicy(['wm-other', 'wm-none']));
    for (const call of [
      () => h.proxy.decrypt({ key: 'wm-none', ciphertext: 'vault:v1:AAAA' }),
      () => h.proxy.rewrap({ key: 'wm-none', ciphertext: 'vault:v1:AAAA' }),
      () => h.proxy.rotateKey({ key: 'wm-none' }),
    ]) {
      const err = await rejection(call);
      assert.equal(err.code, 'WM_ERR_SECRET_NOT_FOUND');
      assert.equal(err.details?.['reason'], 'no-key');
      assert.match(err.message, /no transit key 'wm-none'/);
    }
    vault.transit('transit').createKey('wm-other');
    const foreign = await h.proxy.encrypt({ key: 'wm-other', plaintext: CANARY_B64 });
    const mine = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    const body = mine.ciphertext.slice('vault:v1:'.length);
    const flipped = `vault:v1:${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`;
    const cases: Array<[string, string]> = [
      [foreign.ciphertext, 'invalid ciphertext: unable to decrypt'],
      [flipped, 'invalid ciphertext: unable to decrypt'],
      ['not-a-vault-ciphertext', 'invalid ciphertext: no prefix'],
      ['vault:v9:AAAA', 'invalid ciphertext: version is too new'],
    ];
    for (const [ciphertext, vaultSays] of cases) {
      const err = await rejection(() => h.proxy.decrypt({ key: KEY, ciphertext }));
      assert.equal(err.code, 'WM_ERR_VALIDATION', ciphertext);
      assert.equal(err.details?.['reason'], 'bad-ciphertext');
      assert.deepEqual(err.details?.['vaultErrors'], [vaultSays]);
      assertNoPlaintext(err);
    }
  });

  it('the plaintext never shows in an error or a log line, whatever fails: sealed, a 500, a timeout, a refused or malformed call', async (t) => {
    const { vault, h } = await transitSetup(t);
    const sealed = await h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 });
    const failures = [];
    vault.sealed = true;
    failures.push(await rejection(() => h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 })));
    failures.push(await rejection(() => h.proxy.decrypt({ key: KEY, ciphertext: sealed.ciphertext })));
    vault.sealed = false;
    // Each call is tried twice (readRetries 1): the faults last exactly for the calls that meet them.
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], match: /^transit\//, times: 4 });
    failures.push(await rejection(() => h.proxy.decrypt({ key: KEY, ciphertext: sealed.ciphertext })));
    failures.push(await rejection(() => h.proxy.rewrap({ key: KEY, ciphertext: sealed.ciphertext })));
    vault.fault({ kind: 'reset', match: /^transit\//, times: 2 });
    failures.push(await rejection(() => h.proxy.encrypt({ key: KEY, plaintext: CANARY_B64 })));
    // Not base64: refused by the contract before the plugin runs, without echoing the value.
    failures.push(await rejection(() => h.proxy.encrypt({ key: KEY, plaintext: CANARY })));
    assert.deepEqual(failures.map((f) => f.code), ['WM_ERR_NETWORK', 'WM_ERR_NETWORK', 'WM_ERR_NETWORK', 'WM_ERR_NETWORK', 'WM_ERR_NETWORK', 'WM_ERR_VALIDATION']);
    assertNoPlaintext(failures, h.logs);

    assert.equal((await h.proxy.decrypt({ key: KEY, ciphertext: sealed.ciphertext })).plaintext, CANARY_B64, 'no fault left over');
    const slow = await harness(t, vault, { requestTimeoutMs: 300, readRetries: 0, auth: { method: 'token', token: { file: await secretFile(await tempDir(t), 't', vault.createToken({ policies: ['wm', 'transit'] })) } } });
    vault.fault({ kind: 'hang', match: /^transit\/decrypt\// });
    const timeout = await rejection(() => slow.proxy.decrypt({ key: KEY, ciphertext: sealed.ciphertext }));
    assert.equal(timeout.code, 'WM_ERR_TIMEOUT');
    assertNoPlaintext(timeout, slow.logs);
  });
});
