import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budget } from '../../helpers/waitFor.ts';
import { assertNoCanary, errorText, expectCode, grantWith, NOBODY, realmSecrets, ROTATOR, RUNNER, startPlugin, startRealm, VIEWER } from './helpers.ts';

const NAME = `client-secret/${RUNNER}`;

describe('credentials-keycloak admin API authorization', { timeout: budget(120_000) }, () => {
  it('the double answers as Keycloak: 401 without a valid bearer token, 403 without the realm-management role', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const url = `${kc.baseUrl}/admin/realms/${kc.realm}/clients?clientId=${RUNNER}`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.deepEqual(await none.json(), { error: 'HTTP 401 Unauthorized' });
    const forged = await fetch(url, { headers: { authorization: `Bearer ${await kc.idp.mint({}, { key: 'forged' })}` } });
    assert.equal(forged.status, 401, 'a token the realm did not sign');
    const expired = await fetch(url, { headers: { authorization: `Bearer ${await kc.idp.mint({ exp: Math.floor(Date.now() / 1000) - 60, resource_access: { 'realm-management': { roles: ['manage-clients'] } } }, { key: 'provider' })}` } });
    assert.equal(expired.status, 401, 'an expired token');
    const nobody = await fetch(url, { headers: { authorization: `Bearer ${await grantWith(kc, NOBODY, kc.client(NOBODY).secret)}` } });
    assert.equal(nobody.status, 403);
    assert.deepEqual(await nobody.json(), { error: 'unknown_error' });
    const viewer = await grantWith(kc, VIEWER, kc.client(VIEWER).secret);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${viewer}` } })).status, 200, 'view-clients reads');
    const id = kc.client(RUNNER).id;
    const regenerate = await fetch(`${kc.baseUrl}/admin/realms/${kc.realm}/clients/${id}/client-secret`, { method: 'POST', headers: { authorization: `Bearer ${viewer}` } });
    assert.equal(regenerate.status, 403, 'regenerating needs manage-clients');
  });

  it('an admin client without manage-clients may read client secrets but not rotate them: WM_ERR_PERMISSION_DENIED, nothing changed', async (t) => {
    const kc = await startRealm({ rotation: { expirationPeriod: 3_600, rotatedExpirationPeriod: 600, remainingRotationPeriod: 60 } });
    t.after(() => kc.close());
    const s = await startPlugin(kc, {}, { admin: VIEWER });
    t.after(() => s.close());
    const before = kc.client(RUNNER).secret;
    assert.equal((await s.harness.proxy.getSecret({ name: NAME })).value, before, 'view-clients is enough to read');
    const e = await expectCode(s.harness.proxy.createPendingVersion({ name: NAME }), 'WM_ERR_PERMISSION_DENIED', 'regenerating without manage-clients');
    assert.equal((e.details as { status?: number }).status, 403);
    assert.equal(kc.client(RUNNER).secret, before, 'Keycloak still holds the same secret');
    kc.regenerate(RUNNER);
    await expectCode(s.harness.proxy.revokeVersion({ name: NAME, version: 'previous' }), 'WM_ERR_PERMISSION_DENIED', 'deleting the rotated secret without manage-clients');
    assert.ok(kc.client(RUNNER).rotated !== undefined, 'the rotated secret is still there');
    assertNoCanary(errorText(e), realmSecrets(kc, [RUNNER, VIEWER]), 'the error');
  });

  it('an admin client with no realm-management role is refused every client-secret operation with WM_ERR_PERMISSION_DENIED', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const s = await startPlugin(kc, {}, { admin: NOBODY });
    t.after(() => s.close());
    const p = s.harness.proxy;
    await expectCode(p.getSecret({ name: NAME }), 'WM_ERR_PERMISSION_DENIED', 'getSecret');
    await expectCode(p.listVersions({ name: NAME }), 'WM_ERR_PERMISSION_DENIED', 'listVersions');
    await expectCode(p.describe({ name: NAME }), 'WM_ERR_PERMISSION_DENIED', 'describe');
    await expectCode(p.createPendingVersion({ name: NAME }), 'WM_ERR_PERMISSION_DENIED', 'createPendingVersion');
    await expectCode(p.revokeVersion({ name: NAME, version: 'previous' }), 'WM_ERR_PERMISSION_DENIED', 'revokeVersion');
    // Tokens whose secret comes from the admin API need the same read permission.
    await expectCode(p.getSecret({ name: `token/${RUNNER}` }), 'WM_ERR_PERMISSION_DENIED', 'a token whose secret is read through the admin API');
  });

  it('a wrong admin secret is WM_ERR_AUTHENTICATION; the admin token is fetched once for many admin calls', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());
    for (let i = 0; i < 5; i += 1) await s.harness.proxy.listVersions({ name: NAME });
    assert.equal(kc.grants(ROTATOR), 1, 'one admin grant for many admin calls');
    await s.secretFile('admin-secret', 'not-the-admin-secret-0123456789');
    const bad = await startPlugin(kc, { admin: { clientId: ROTATOR, secret: { file: `${s.dir}/admin-secret` } } });
    t.after(() => bad.close());
    const e = await expectCode(bad.harness.proxy.getSecret({ name: NAME }), 'WM_ERR_AUTHENTICATION', 'a wrong admin secret');
    assertNoCanary(errorText(e), ['not-the-admin-secret-0123456789', ...realmSecrets(kc, [ROTATOR, RUNNER])], 'the error');
  });

  it('the rotation policy set through the admin API (client-policies profiles and policies) drives the rotated expiry', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    kc.addClient({ clientId: 'realm-admin', realmManagementRoles: ['manage-realm', 'manage-clients'] });
    const token = await grantWith(kc, 'realm-admin', kc.client('realm-admin').secret);
    const put = (path: string, body: unknown): Promise<Response> =>
      fetch(`${kc.baseUrl}/admin/realms/${kc.realm}/client-policies/${path}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const executor = (rotated: string) => ({ profiles: [{ name: 'rotation', executors: [{ executor: 'secret-rotation', configuration: { 'expiration-period': '3600', 'rotated-expiration-period': rotated, 'remaining-rotation-period': '600' } }] }] });
    assert.equal((await put('profiles', executor('7200'))).status, 400, 'rotated longer than expiration is refused');
    assert.equal((await put('profiles', executor('120'))).status, 204);
    assert.equal((await put('policies', { policies: [{ name: 'confidential', enabled: true, conditions: [{ condition: 'client-access-type', configuration: { type: ['confidential'] } }], profiles: ['rotation'] }] })).status, 204);

    const s = await startPlugin(kc);
    t.after(() => s.close());
    const old = await s.harness.proxy.getSecret({ name: NAME });
    const before = Math.floor(Date.now() / 1000);
    await s.harness.proxy.createPendingVersion({ name: NAME });
    const previous = (await s.harness.proxy.listVersions({ name: NAME })).find((v) => v.version === old.version);
    const expiresS = Date.parse(previous?.expiresAt ?? '') / 1000;
    assert.ok(expiresS >= before + 120 && expiresS <= before + 125, `the rotated secret expires 120 s after the rotation (${expiresS - before})`);
  });
});
