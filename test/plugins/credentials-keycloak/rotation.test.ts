import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { assertNoCanary, claims, DEPLOY, errorText, expectCode, grantOutcome, realmSecrets, RUNNER, startPlugin, startRealm } from './helpers.ts';

const NAME = `client-secret/${RUNNER}`;
const POLICY = { expirationPeriod: 3_600, rotatedExpirationPeriod: 3_600, remainingRotationPeriod: 600 };

describe('credentials-keycloak client-secret/<clientId> rotation through the admin API', { timeout: budget(120_000) }, () => {
  it('reads the client secret Keycloak holds, as the current version', async (t) => {
    const kc = await startRealm({ rotation: POLICY });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());
    const got = await s.harness.proxy.getSecret({ name: NAME });
    assert.equal(got.value, kc.client(RUNNER).secret);
    assert.match(got.version, /^s-[0-9a-f]{16}$/);
    const versions = await s.harness.proxy.listVersions({ name: NAME });
    assert.deepEqual(versions.map((v) => [v.version, v.status, v.stages]), [[got.version, 'active', ['current']]]);
    assert.equal(Date.parse(versions[0]?.createdAt ?? ''), kc.client(RUNNER).secretCreatedAt * 1_000, 'createdAt is client.secret.creation.time');
    assert.equal(Date.parse(versions[0]?.expiresAt ?? ''), (kc.client(RUNNER).secretExpiresAt ?? 0) * 1_000, 'expiresAt is client.secret.expiration.time');
    assert.deepEqual(await s.harness.proxy.describe({ name: NAME }), { name: NAME, currentVersion: got.version, versions: 1 });
    await expectCode(s.harness.proxy.getSecret({ name: NAME, version: 'previous' }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'no rotated secret yet');
  });

  it('createPendingVersion regenerates: the new secret works at the token endpoint at once, the old one until the rotated expiry', async (t) => {
    const kc = await startRealm({ rotation: { ...POLICY, rotatedExpirationPeriod: 4 } });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());
    const p = s.harness.proxy;
    const old = await p.getSecret({ name: NAME });

    const created = await p.createPendingVersion({ name: NAME });
    assert.deepEqual([created.status, created.stages], ['active', ['current']], 'live at once: current, never pending');
    assert.notEqual(created.version, old.version);
    const fresh = await p.getSecret({ name: NAME });
    assert.equal(fresh.version, created.version);
    assert.equal(fresh.value, kc.client(RUNNER).secret, 'the plugin answers the secret Keycloak now holds');
    assert.equal(await grantOutcome(kc, RUNNER, fresh.value as string), 'ok', 'the new secret works at the token endpoint at once');
    assert.deepEqual(await p.testVersion({ name: NAME, version: created.version }), { ok: true });
    assert.deepEqual(await p.promoteVersion({ name: NAME, version: created.version }), created, 'promote is bookkeeping');
    assert.deepEqual((await p.describe({ name: NAME })).currentVersion, created.version);

    const versions = await p.listVersions({ name: NAME });
    const previous = versions.find((v) => v.version === old.version);
    assert.ok(previous !== undefined, 'the old secret is listed');
    assert.deepEqual([previous.status, previous.stages], ['deprecated', ['previous']]);
    const rotatedUntil = Date.parse(previous.expiresAt ?? '');
    assert.equal(rotatedUntil, (kc.client(RUNNER).rotated?.expiresAt ?? 0) * 1_000, 'the grace period the plugin reports is Keycloak’s rotated expiry');
    assert.equal((await p.getSecret({ name: NAME, version: 'previous' })).value, old.value);
    assert.equal(await grantOutcome(kc, RUNNER, old.value as string), 'ok', 'the old secret still works inside the grace period');
    assert.deepEqual(await p.testVersion({ name: NAME, version: 'previous' }), { ok: true });

    const refusedAt = await waitFor(async () => ((await grantOutcome(kc, RUNNER, old.value as string)) === 'invalid_client' ? Date.now() : undefined), 'the rotated secret to expire', 30_000, 100);
    // Keycloak counts in whole seconds: the refusal comes at the reported expiry, not before it.
    assert.ok(refusedAt >= rotatedUntil - 1_000, `refused ${rotatedUntil - refusedAt} ms before the rotated expiry`);
    await expectCode(p.getSecret({ name: NAME, version: old.version }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'Keycloak dropped the expired rotated secret');
    assert.equal(await grantOutcome(kc, RUNNER, fresh.value as string), 'ok', 'the new secret is unaffected');
  });

  it('revokeVersion of the previous version deletes the rotated secret: refused at once, listed as revoked, idempotent across a restart', async (t) => {
    const kc = await startRealm({ rotation: POLICY });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());
    const p = s.harness.proxy;
    const old = await p.getSecret({ name: NAME });
    const created = await p.createPendingVersion({ name: NAME });
    assert.equal(await grantOutcome(kc, RUNNER, old.value as string), 'ok');

    const revoked = await p.revokeVersion({ name: NAME, version: old.version });
    assert.deepEqual([revoked.version, revoked.status, revoked.stages], [old.version, 'revoked', []]);
    assert.equal(kc.client(RUNNER).rotated, undefined, 'Keycloak holds no rotated secret');
    assert.equal(await grantOutcome(kc, RUNNER, old.value as string), 'invalid_client', 'the old secret is refused after revoke');
    assert.equal(kc.requests.filter((r) => r.method === 'DELETE' && r.path.endsWith('/client-secret/rotated')).length, 1);
    await expectCode(p.getSecret({ name: NAME, version: old.version }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'the revoked version');
    const tested = await p.testVersion({ name: NAME, version: old.version });
    assert.equal(tested.ok, false, 'a revoked version fails its test');
    assert.match(tested.reason ?? '', /revoked/);
    const versions = await p.listVersions({ name: NAME });
    assert.deepEqual(versions.map((v) => [v.version, v.status, v.stages]), [[created.version, 'active', ['current']], [old.version, 'revoked', []]]);
    await expectCode(p.promoteVersion({ name: NAME, version: old.version }), 'WM_ERR_CONFLICT', 'promoting a revoked version');

    // A retry after a crash, in a new plugin instance on the same state directory.
    await s.harness.close();
    const again = await startPlugin(kc, {}, { stateDir: s.harness.stateDir });
    t.after(() => again.close());
    const retried = await again.harness.proxy.revokeVersion({ name: NAME, version: old.version });
    assert.deepEqual([retried.version, retried.status], [old.version, 'revoked']);
    assert.equal(kc.requests.filter((r) => r.method === 'DELETE').length, 1, 'nothing left to delete: no second DELETE');
  });

  it('refuses what Keycloak cannot do: a chosen value, revoking current, promoting the rotated secret back (rollback)', async (t) => {
    const kc = await startRealm({ rotation: POLICY });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());
    const p = s.harness.proxy;
    const chosen = 'chosen-value-canary-5f1e0a9c7b3d';
    const before = kc.client(RUNNER).secret;
    const e1 = await expectCode(p.createPendingVersion({ name: NAME, value: chosen }), 'WM_ERR_COMPATIBILITY', 'createPendingVersion with a value');
    assert.equal(kc.client(RUNNER).secret, before, 'nothing regenerated');
    await expectCode(p.revokeVersion({ name: NAME, version: 'current' }), 'WM_ERR_CONFLICT', 'revoking the current secret');
    const old = await p.getSecret({ name: NAME });
    await p.createPendingVersion({ name: NAME });
    const e2 = await expectCode(p.promoteVersion({ name: NAME, version: 'previous' }), 'WM_ERR_COMPATIBILITY', 'promoting the rotated secret');
    assert.equal((await p.getSecret({ name: NAME, version: 'previous' })).version, old.version, 'the rotated secret is untouched');
    await expectCode(p.getSecret({ name: NAME, version: 'pending' }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'there is never a pending version');
    await expectCode(p.getSecret({ name: `client-secret/${DEPLOY}`, version: 'nope' }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'an unknown version');
    const canaries = realmSecrets(kc, [RUNNER, DEPLOY], [chosen]);
    for (const e of [e1, e2]) assertNoCanary(errorText(e), canaries, `the ${e.code} error`);
  });

  it('without the rotation policy the old secret dies at once, and the next token grant uses the new secret without a refusal', async (t) => {
    const kc = await startRealm({ tokenTtlSeconds: 2 });
    t.after(() => kc.close());
    const s = await startPlugin(kc, { tokenSkewSeconds: 1 });
    t.after(() => s.close());
    const p = s.harness.proxy;
    const old = await p.getSecret({ name: NAME });
    const token = await p.getSecret({ name: `token/${RUNNER}` });
    const created = await p.createPendingVersion({ name: NAME });
    assert.equal(await grantOutcome(kc, RUNNER, old.value as string), 'invalid_client', 'no executor: the old secret is gone');
    assert.deepEqual((await p.listVersions({ name: NAME })).map((v) => v.version), [created.version], 'no previous version');
    const since = kc.requests.length;
    const next = await waitFor(async () => {
      const v = await p.getSecret({ name: `token/${RUNNER}` });
      return v.version !== token.version ? v : undefined;
    }, 'a token after the rotation', 30_000);
    const tokenCalls = kc.requests.slice(since).filter((r) => r.clientId === RUNNER && r.path.endsWith('/token'));
    assert.deepEqual(tokenCalls.map((r) => r.status), [200], 'the plugin used the regenerated secret straight away');
    const canaries = realmSecrets(kc, [RUNNER], [old.value as string, token.value as string, next.value as string]);
    assertNoCanary(JSON.stringify(s.harness.logs), canaries, 'the plugin logs');
    assert.ok(s.harness.logs.some((l) => l.message.includes('regenerated')), 'the regeneration is logged (without the value)');
  });

  it('a token of a client whose secret was regenerated outside the plugin: the plugin re-reads the secret through the admin API once', async (t) => {
    const kc = await startRealm({ tokenTtlSeconds: 2 });
    t.after(() => kc.close());
    const s = await startPlugin(kc, { tokenSkewSeconds: 1 });
    t.after(() => s.close());
    const first = await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
    kc.regenerate(RUNNER);
    const next = await waitFor(async () => {
      const v = await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
      return v.version !== first.version ? v : undefined;
    }, 'a token obtained with the regenerated secret', 30_000);
    assert.equal(claims(next.value as string)['azp'], RUNNER);
    const statuses = kc.requests.filter((r) => r.clientId === RUNNER && r.path.endsWith('/token')).map((r) => r.status);
    assert.deepEqual(statuses.slice(-2), [401, 200], 'one refusal with the stale secret, then a grant with the one read again');
  });
});
