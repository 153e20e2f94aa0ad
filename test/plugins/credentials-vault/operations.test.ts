import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import nodeVault from 'node-vault';
import { harness, rejection, startVault } from './helpers.ts';

describe('credentials-vault operations against the Vault double', () => {
  it('putSecret makes KV versions that getSecret, listVersions and describe report, with stages in custom metadata', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    const v1 = await h.proxy.putSecret({ name: 'db/password', value: 'hunter2-a' });
    assert.deepEqual([v1.version, v1.status, v1.stages], ['1', 'active', ['current']]);
    assert.ok(Date.parse(v1.createdAt) > 0);
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    const v2 = await h.proxy.putSecret({ name: 'db/password', value: { user: 'app', password: 'hunter2-b' } });
    assert.equal(v2.version, '2');
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password' }), { name: 'db/password', version: '2', value: { user: 'app', password: 'hunter2-b' } });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password', version: 'previous' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'db/password', version: '1' }), { name: 'db/password', version: '1', value: 'hunter2-a' });
    assert.deepEqual(
      (await h.proxy.listVersions({ name: 'db/password' })).map((v) => [v.version, v.status, v.stages]),
      [
        ['1', 'deprecated', ['previous']],
        ['2', 'active', ['current']],
      ],
    );
    assert.deepEqual(await h.proxy.describe({ name: 'db/password' }), { name: 'db/password', currentVersion: '2', versions: 2 });
    const stored = vault.inspect('secret', 'wm/db/password');
    assert.deepEqual(stored?.customMetadata, { 'wm-current': '2', 'wm-previous': '1' });
    assert.equal(stored?.currentVersion, 2);
  });

  it('a full rotation through the contract steps leaves the stage metadata right, and rollback and revoke follow it', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    await h.proxy.putSecret({ name: 'api', value: 'one' });
    const pending = await h.proxy.createPendingVersion({ name: 'api', value: 'two' });
    assert.deepEqual([pending.version, pending.status, pending.stages], ['2', 'pending', ['pending']]);
    assert.deepEqual(vault.inspect('secret', 'wm/api')?.customMetadata, { 'wm-current': '1', 'wm-pending': '2' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'api' }), { name: 'api', version: '1', value: 'one' }, 'the pending version is Vault’s latest, not current');
    assert.deepEqual(await h.proxy.getSecret({ name: 'api', version: 'pending' }), { name: 'api', version: '2', value: 'two' });
    assert.deepEqual(await h.proxy.testVersion({ name: 'api', version: '2' }), { ok: true });

    const promoted = await h.proxy.promoteVersion({ name: 'api', version: '2' });
    assert.deepEqual([promoted.status, promoted.stages], ['active', ['current']]);
    assert.deepEqual(await h.proxy.promoteVersion({ name: 'api', version: '2' }), promoted, 'promote is idempotent');
    assert.deepEqual(vault.inspect('secret', 'wm/api')?.customMetadata, { 'wm-current': '2', 'wm-previous': '1' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'api', version: 'previous' }), { name: 'api', version: '1', value: 'one' }, 'previous stays readable in the grace period');

    const revoked = await h.proxy.revokeVersion({ name: 'api', version: '1' });
    assert.deepEqual([revoked.status, revoked.stages], ['revoked', []]);
    assert.deepEqual(await h.proxy.revokeVersion({ name: 'api', version: '1' }), revoked, 'revoke is idempotent');
    const stored = vault.inspect('secret', 'wm/api');
    assert.deepEqual(stored?.versions['1'], { destroyed: true, deleted: false, hasData: false }, 'revoked is destroyed: the data is gone');
    assert.deepEqual(stored?.customMetadata, { 'wm-current': '2' });
    const read = await rejection(() => h.proxy.getSecret({ name: 'api', version: '1' }));
    assert.equal(read.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal(read.details?.['status'], 'revoked');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'api', version: 'previous' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.promoteVersion({ name: 'api', version: '1' }))).code, 'WM_ERR_CONFLICT');
    const current = await rejection(() => h.proxy.revokeVersion({ name: 'api', version: '2' }));
    assert.equal(current.code, 'WM_ERR_CONFLICT');
    assert.equal(current.details?.['reason'], 'current');
    assert.deepEqual(await h.proxy.testVersion({ name: 'api', version: '1' }), { ok: false, reason: 'version 1 is revoked' });

    // Rollback: a third version, promoted, then previous promoted back.
    await h.proxy.createPendingVersion({ name: 'api', value: 'three' });
    await h.proxy.promoteVersion({ name: 'api', version: 'pending' });
    await h.proxy.promoteVersion({ name: 'api', version: 'previous' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'api' }), { name: 'api', version: '2', value: 'two' });
    assert.deepEqual(vault.inspect('secret', 'wm/api')?.customMetadata, { 'wm-current': '2', 'wm-previous': '3' });
  });

  it('createPendingVersion generates a value when given none, and destroys an earlier pending version nobody promoted', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    await h.proxy.putSecret({ name: 'token', value: 'first' });
    const a = await h.proxy.createPendingVersion({ name: 'token' });
    const generated = await h.proxy.getSecret({ name: 'token', version: 'pending' });
    assert.equal(typeof generated.value, 'string');
    assert.ok((generated.value as string).length >= 40, 'a 32-byte random value');
    const b = await h.proxy.createPendingVersion({ name: 'token', value: 'third' });
    const versions = await h.proxy.listVersions({ name: 'token' });
    assert.deepEqual(
      versions.map((v) => [v.version, v.status, v.stages]),
      [
        ['1', 'active', ['current']],
        [a.version, 'revoked', []],
        [b.version, 'pending', ['pending']],
      ],
    );
    assert.equal(vault.inspect('secret', 'wm/token')?.versions[a.version]?.destroyed, true);
    assert.equal((await rejection(() => h.proxy.createPendingVersion({ name: 'missing', value: 'x' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
  });

  it('reads a key an operator wrote without stage metadata: current is the latest version; soft delete, undelete and destroy map to the contract', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    const operator = nodeVault({ endpoint: vault.address, token: vault.rootToken });
    await operator.write('secret/data/wm/legacy', { data: { user: 'svc', password: 'pw-1' } });
    await operator.write('secret/data/wm/legacy', { data: { user: 'svc', password: 'pw-2' } });
    assert.deepEqual(await h.proxy.getSecret({ name: 'legacy' }), { name: 'legacy', version: '2', value: { user: 'svc', password: 'pw-2' } });
    assert.deepEqual(await h.proxy.describe({ name: 'legacy' }), { name: 'legacy', currentVersion: '2', versions: 2 });
    assert.deepEqual((await h.proxy.listVersions({ name: 'legacy' })).map((v) => [v.version, v.status, v.stages]), [['1', 'deprecated', []], ['2', 'active', ['current']]]);

    // The operator soft-deletes version 1: unreadable, still listed (deprecated, with the deletion time), not revoked.
    await operator.write('secret/delete/wm/legacy', { versions: [1] });
    const deleted = await rejection(() => h.proxy.getSecret({ name: 'legacy', version: '1' }));
    assert.equal(deleted.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal(deleted.details?.['status'], 'deleted');
    assert.match(deleted.message, /soft-deleted/);
    const listed = (await h.proxy.listVersions({ name: 'legacy' }))[0];
    assert.equal(listed?.status, 'deprecated');
    assert.ok(listed?.expiresAt !== undefined && Date.parse(listed.expiresAt) > 0);
    assert.deepEqual(await h.proxy.testVersion({ name: 'legacy', version: '1' }), { ok: false, reason: 'version 1 is soft-deleted in Vault' });

    // Promoting it (a rollback to it) undeletes it first.
    await h.proxy.promoteVersion({ name: 'legacy', version: '1' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'legacy' }), { name: 'legacy', version: '1', value: { user: 'svc', password: 'pw-1' } });
    assert.equal(vault.inspect('secret', 'wm/legacy')?.versions['1']?.deleted, false);
    assert.deepEqual(vault.inspect('secret', 'wm/legacy')?.customMetadata, { 'wm-current': '1', 'wm-previous': '2' });

    // The operator destroys version 2: revoked, the previous stage is gone.
    await operator.destroySecretVersions({ mount_point: 'secret', path: 'wm/legacy', versions: [2] });
    assert.equal((await h.proxy.listVersions({ name: 'legacy' }))[1]?.status, 'revoked');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'legacy', version: 'previous' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
  });

  it('unknown names, versions and stages get the contract codes; a name that is no Vault path is refused', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'nope' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.listVersions({ name: 'nope' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    await h.proxy.putSecret({ name: 'x', value: 'v' });
    for (const version of ['9', 'pending', 'previous', '0', 'abc']) {
      assert.equal((await rejection(() => h.proxy.getSecret({ name: 'x', version }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND', version);
    }
    for (const name of ['../x', 'a//b', '.hidden', 'a b', 'a?b']) {
      assert.equal((await rejection(() => h.proxy.putSecret({ name, value: 'v' }))).code, 'WM_ERR_VALIDATION', name);
    }
  });

  it('values: empty or malformed is WM_ERR_SECRET_INVALID_FORMAT, over maxValueBytes is WM_ERR_SECRET_SIZE_LIMIT, nothing is written', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault, { maxValueBytes: 32 });
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'f', value: '' }))).code, 'WM_ERR_SECRET_INVALID_FORMAT');
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'f', value: {} }))).code, 'WM_ERR_SECRET_INVALID_FORMAT');
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'f', value: { 'wm:value': 'x' } }))).code, 'WM_ERR_SECRET_INVALID_FORMAT', 'the plugin’s reserved keys');
    await h.proxy.putSecret({ name: 'f', value: 'x'.repeat(32) });
    const big = await rejection(() => h.proxy.putSecret({ name: 'f', value: 'x'.repeat(33) }));
    assert.equal(big.code, 'WM_ERR_SECRET_SIZE_LIMIT');
    assert.equal(vault.inspect('secret', 'wm/f')?.currentVersion, 1);
  });

  it('two writers never lose an update: check-and-set conflicts are retried, every write gets its own version', async (t) => {
    const vault = await startVault(t);
    const a = await harness(t, vault);
    const b = await harness(t, vault);
    await a.proxy.putSecret({ name: 'shared', value: 'v0' });
    const writes = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? a : b).proxy.putSecret({ name: 'shared', value: `v${i + 1}` })),
    );
    const versions = writes.map((w) => Number(w.version)).sort((x, y) => x - y);
    assert.deepEqual(versions, [2, 3, 4, 5, 6, 7]);
    const values = new Set<string>();
    for (const v of versions) values.add((await a.proxy.getSecret({ name: 'shared', version: String(v) })).value as string);
    assert.equal(values.size, 6);
  });

  it('a write that loses the check-and-set race to another writer re-reads and writes again, keeping both versions', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    await h.proxy.putSecret({ name: 'raced', value: 'one' });
    const operator = nodeVault({ endpoint: vault.address, token: vault.rootToken });
    vault.fault({ kind: 'before', match: /^secret\/data\/wm\/raced$/, method: 'POST', run: () => operator.write('secret/data/wm/raced', { data: { other: 'writer' } }) });
    const mine = await h.proxy.putSecret({ name: 'raced', value: 'two' });
    assert.equal(mine.version, '3');
    const refused = vault.requests.filter((r) => r.method === 'POST' && r.path === 'secret/data/wm/raced' && r.status === 400);
    assert.equal(refused.length, 1, 'the stale cas was refused once');
    assert.deepEqual(await h.proxy.getSecret({ name: 'raced' }), { name: 'raced', version: '3', value: 'two' });
    assert.deepEqual(await h.proxy.getSecret({ name: 'raced', version: '2' }), { name: 'raced', version: '2', value: { other: 'writer' } });
  });

  it('requestToken: a retried write returns the version the first one made; another value with the same token is a conflict', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    const first = await h.proxy.putSecret({ name: 'idem', value: 'one', requestToken: 'put-0001' });
    assert.deepEqual(await h.proxy.putSecret({ name: 'idem', value: 'one', requestToken: 'put-0001' }), first);
    assert.equal(vault.inspect('secret', 'wm/idem')?.currentVersion, 1);
    const conflict = await rejection(() => h.proxy.putSecret({ name: 'idem', value: 'two', requestToken: 'put-0001' }));
    assert.equal(conflict.code, 'WM_ERR_CONFLICT');
    assert.doesNotMatch(JSON.stringify(conflict), /"two"|one/);

    const pending = await h.proxy.createPendingVersion({ name: 'idem', requestToken: 'rot-0001' });
    const again = await h.proxy.createPendingVersion({ name: 'idem', requestToken: 'rot-0001' });
    assert.deepEqual(again, pending, 'the generated value is made once');
    assert.equal(vault.inspect('secret', 'wm/idem')?.currentVersion, 2);
    assert.deepEqual(await h.proxy.getSecret({ name: 'idem' }), { name: 'idem', version: '1', value: 'one' }, 'the token is not part of the value');
  });

  it('a write that crashed between the data and the stage metadata is completed by its retry', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    await h.proxy.putSecret({ name: 'crash', value: 'one' });
    // The stage write fails after the data write succeeded: the version exists but is not current.
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], match: /^secret\/metadata\/wm\/crash$/, method: 'POST' });
    const failed = await rejection(() => h.proxy.putSecret({ name: 'crash', value: 'two', requestToken: 'crash-001' }));
    assert.equal(failed.code, 'WM_ERR_NETWORK');
    assert.deepEqual(await h.proxy.getSecret({ name: 'crash' }), { name: 'crash', version: '1', value: 'one' });
    const retried = await h.proxy.putSecret({ name: 'crash', value: 'two', requestToken: 'crash-001' });
    assert.deepEqual([retried.version, retried.status, retried.stages], ['2', 'active', ['current']]);
    assert.deepEqual(vault.inspect('secret', 'wm/crash')?.customMetadata, { 'wm-current': '2', 'wm-previous': '1' });
  });
});
