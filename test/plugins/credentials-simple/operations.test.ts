import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { harness, keyFile, rejection, tempDir } from './helpers.ts';

describe('credentials-simple operations', () => {
  it('putSecret stores a version that getSecret, listVersions and describe report', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    const v1 = await h.proxy.putSecret({ name: 'db/password', value: 'hunter2-a' });
    assert.equal(v1.version, '1');
    assert.equal(v1.status, 'active');
    assert.deepEqual(v1.stages, ['current']);
    assert.ok(Date.parse(v1.createdAt) > 0);
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password', version: 'current' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    assert.deepEqual(await h.proxy.describe({ name: 'db/password' }), { name: 'db/password', currentVersion: '1', versions: 1 });

    const v2 = await h.proxy.putSecret({ name: 'db/password', value: { user: 'app', password: 'hunter2-b' } });
    assert.equal(v2.version, '2');
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password' }), { name: 'db/password', version: '2', value: { user: 'app', password: 'hunter2-b' } });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password', version: 'previous' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password', version: '1' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    const list = await h.proxy.listVersions({ name: 'db/password' });
    assert.deepEqual(
      list.map((v) => [v.version, v.status, v.stages]),
      [
        ['1', 'deprecated', ['previous']],
        ['2', 'active', ['current']],
      ],
    );
    assert.deepEqual(await h.proxy.describe({ name: 'db/password' }), { name: 'db/password', currentVersion: '2', versions: 2 });
  });

  it('rotates in steps: create pending, test, promote, revoke the old one, and rolls back by promoting previous', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    await h.proxy.putSecret({ name: 'api', value: 'one' });

    const pending = await h.proxy.createPendingVersion({ name: 'api', value: 'two' });
    assert.equal(pending.status, 'pending');
    assert.deepEqual(pending.stages, ['pending']);
    assert.deepEqual(await h.proxy.getSecret({ name: 'api' }), { name: 'api', version: '1', value: 'one' }, 'pending is not current');
    assert.deepEqual(await h.proxy.getSecret({ name: 'api', version: 'pending' }), { name: 'api', version: '2', value: 'two' });
    assert.deepEqual(await h.proxy.testVersion({ name: 'api', version: '2' }), { ok: true });

    const promoted = await h.proxy.promoteVersion({ name: 'api', version: '2' });
    assert.deepEqual([promoted.status, promoted.stages], ['active', ['current']]);
    assert.deepEqual(await h.proxy.promoteVersion({ name: 'api', version: '2' }), promoted, 'promote is idempotent');
    assert.deepEqual(
      (await h.proxy.listVersions({ name: 'api' })).map((v) => [v.version, v.status, v.stages]),
      [
        ['1', 'deprecated', ['previous']],
        ['2', 'active', ['current']],
      ],
    );

    // Rollback: the previous version becomes current again.
    await h.proxy.promoteVersion({ name: 'api', version: 'previous' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'api' }), { name: 'api', version: '1', value: 'one' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'api', version: 'previous' }), { name: 'api', version: '2', value: 'two' });

    const revoked = await h.proxy.revokeVersion({ name: 'api', version: '2' });
    assert.deepEqual([revoked.status, revoked.stages], ['revoked', []]);
    assert.deepEqual(await h.proxy.revokeVersion({ name: 'api', version: '2' }), revoked, 'revoke is idempotent');
    const read = await rejection(() => h.proxy.getSecret({ name: 'api', version: '2' }));
    assert.equal(read.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal(read.details?.['status'], 'revoked');
    assert.deepEqual(await h.proxy.testVersion({ name: 'api', version: '2' }), { ok: false, reason: 'version 2 is revoked' });
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'api', version: 'previous' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.promoteVersion({ name: 'api', version: '2' }))).code, 'WM_ERR_CONFLICT');
    const current = await rejection(() => h.proxy.revokeVersion({ name: 'api', version: '1' }));
    assert.equal(current.code, 'WM_ERR_CONFLICT');
    assert.equal(current.details?.['reason'], 'current');
  });

  it('createPendingVersion generates a random value when given none, and replaces an abandoned pending version', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    await h.proxy.putSecret({ name: 'token', value: 'first' });
    const a = await h.proxy.createPendingVersion({ name: 'token' });
    const valueA = (await h.proxy.getSecret({ name: 'token', version: a.version })).value;
    const b = await h.proxy.createPendingVersion({ name: 'token' });
    assert.equal(typeof valueA, 'string');
    assert.ok((valueA as string).length >= 40, 'at least 32 random bytes, base64url');
    assert.deepEqual(
      (await h.proxy.listVersions({ name: 'token' })).map((v) => [v.version, v.status, v.stages]),
      [
        ['1', 'active', ['current']],
        [a.version, 'revoked', []],
        [b.version, 'pending', ['pending']],
      ],
    );
    const other = (await h.proxy.getSecret({ name: 'token', version: 'pending' })).value;
    assert.notEqual(other, valueA);
    assert.equal((await rejection(() => h.proxy.createPendingVersion({ name: 'missing' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
  });

  it('keeps at most maxVersions versions, dropping the oldest unstaged ones', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)), { maxVersions: 3 });
    for (let i = 1; i <= 6; i += 1) await h.proxy.putSecret({ name: 's', value: `v${i}` });
    assert.deepEqual(
      (await h.proxy.listVersions({ name: 's' })).map((v) => [v.version, v.status, v.stages]),
      [
        ['4', 'deprecated', []],
        ['5', 'deprecated', ['previous']],
        ['6', 'active', ['current']],
      ],
    );
    assert.equal((await h.proxy.putSecret({ name: 's', value: 'v7' })).version, '7', 'version numbers are never reused');
  });

  it('reports unknown secrets and versions with their own codes', async (t) => {
    const dir = await tempDir(t);
    const h = await harness(t, dir, await keyFile(dir, 'key', 'k'.repeat(32)));
    // Before the store file exists.
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'nope' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    await h.proxy.putSecret({ name: 'one', value: 'x' });
    for (const call of [
      () => h.proxy.getSecret({ name: 'nope' }),
      () => h.proxy.listVersions({ name: 'nope' }),
      () => h.proxy.describe({ name: 'nope' }),
      () => h.proxy.testVersion({ name: 'nope', version: '1' }),
      () => h.proxy.promoteVersion({ name: 'nope', version: '1' }),
      () => h.proxy.revokeVersion({ name: 'nope', version: '1' }),
      () => h.proxy.getSecret({ name: 'toString' }),
    ]) {
      const e = await rejection(call);
      assert.equal(e.code, 'WM_ERR_SECRET_NOT_FOUND', e.message);
    }
    for (const call of [
      () => h.proxy.getSecret({ name: 'one', version: '9' }),
      () => h.proxy.getSecret({ name: 'one', version: 'pending' }),
      () => h.proxy.getSecret({ name: 'one', version: 'previous' }),
      () => h.proxy.testVersion({ name: 'one', version: '9' }),
      () => h.proxy.promoteVersion({ name: 'one', version: '9' }),
      () => h.proxy.revokeVersion({ name: 'one', version: '9' }),
    ]) {
      const e = await rejection(call);
      assert.equal(e.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND', e.message);
      assert.equal(e.details?.['name'], 'one');
    }
  });

  it('reads its key from the environment variable named by keyEnv', async (t) => {
    const dir = await tempDir(t);
    const { createPluginHarness } = await import('@worker-manager/plugin-sdk/testing');
    const { default: plugin } = await import('@worker-manager/plugin-credentials-simple');
    process.env['WM_TEST_CREDS_KEY'] = 'e'.repeat(24);
    t.after(() => delete process.env['WM_TEST_CREDS_KEY']);
    const h = await createPluginHarness(plugin, { stateDir: dir, config: { keyEnv: 'WM_TEST_CREDS_KEY', scrypt: { cost: 1024 } } });
    t.after(() => h.close());
    await h.proxy.putSecret({ name: 'x', value: 'from-env' });
    assert.equal((await h.proxy.getSecret({ name: 'x' })).value, 'from-env');
    // The same key material in a file opens the same store.
    const same = await harness(t, dir, await keyFile(dir, 'key', 'e'.repeat(24)));
    assert.equal((await same.proxy.getSecret({ name: 'x' })).value, 'from-env');
  });
});
