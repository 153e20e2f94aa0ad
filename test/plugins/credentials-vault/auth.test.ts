import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-vault';
import { createPluginHarness } from '@worker-manager/plugin-sdk/testing';
import { waitFor } from '../../helpers/waitFor.ts';
import { harness, jwtIssuer, rejection, secretFile, startVault, tempDir } from './helpers.ts';

describe('credentials-vault authentication', () => {
  it('token from a file: every request carries it in X-Vault-Token, with the namespace header', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const token = vault.createToken({ policies: ['wm'], ttlSeconds: 0 });
    const h = await harness(t, vault, { namespace: 'team-a', auth: { method: 'token', token: { file: await secretFile(dir, 'token', token) } } });
    await h.proxy.putSecret({ name: 'a', value: 'v' });
    const kv = vault.requests.filter((r) => r.path.startsWith('secret/'));
    assert.ok(kv.length >= 3);
    assert.ok(kv.every((r) => r.accessor === vault.accessorOf(token) && r.namespace === 'team-a'));
    assert.ok(!vault.requests.some((r) => r.path === 'auth/token/renew-self'), 'a token without TTL is not renewed');
  });

  it('token from an environment variable; a variable that is not set fails setup with WM_ERR_CONFIGURATION naming it', async (t) => {
    const vault = await startVault(t);
    process.env['WM_TEST_VAULT_TOKEN'] = vault.createToken({ policies: ['wm'] });
    t.after(() => delete process.env['WM_TEST_VAULT_TOKEN']);
    const h = await harness(t, vault, { auth: { method: 'token', token: { env: 'WM_TEST_VAULT_TOKEN' } } });
    await h.proxy.putSecret({ name: 'env', value: 'v' });
    const missing = await rejection(() => createPluginHarness(plugin, { config: { address: vault.address, auth: { method: 'token', token: { env: 'WM_TEST_VAULT_UNSET' } } } }));
    assert.equal(missing.code, 'WM_ERR_CONFIGURATION');
    assert.match(missing.message, /WM_TEST_VAULT_UNSET/);
  });

  it('a renewable token is renewed with renew-self before its TTL ends, and keeps working', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const token = vault.createToken({ policies: ['wm'], ttlSeconds: 6, renewable: true });
    const h = await harness(t, vault, { tokenRefreshFraction: 0.2, auth: { method: 'token', token: { file: await secretFile(dir, 'token', token) } } });
    await h.proxy.putSecret({ name: 'r', value: 'v' });
    await waitFor(() => vault.requests.some((r) => r.path === 'auth/token/renew-self' && r.status === 200), 'a renew-self');
    // The double records the request as it answers; the plugin logs once it has read the answer, a moment later.
    await waitFor(() => h.logs.some((l) => l.message === 'vault token renewed'), 'the renewal in the plugin log');
    assert.deepEqual((await h.proxy.getSecret({ name: 'r' })).value, 'v');
  });

  it('AppRole: logs in with role_id and secret_id, and logs in again before the token TTL ends', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const { roleId, secretId } = vault.addAppRole('wm', { policies: ['wm'], ttlSeconds: 6 });
    const h = await harness(t, vault, { tokenRefreshFraction: 0.2, auth: { method: 'approle', roleId, secretId: { file: await secretFile(dir, 'secret-id', secretId) } } });
    await h.proxy.putSecret({ name: 'ar', value: 'v' });
    assert.equal(vault.logins.length, 1);
    await waitFor(() => vault.logins.length >= 2 || undefined, 'a second AppRole login');
    const [first, second] = vault.logins as [(typeof vault.logins)[0], (typeof vault.logins)[0]];
    assert.ok(first.expiresAt !== undefined && second.at < first.expiresAt, 'the new login came before the first token expired');
    await h.proxy.putSecret({ name: 'ar', value: 'v2' });
    const last = vault.requests.filter((r) => r.path === 'secret/data/wm/ar').at(-1);
    assert.equal(last?.accessor, vault.logins.at(-1)?.accessor, 'requests use the newest token');
  });

  it('AppRole: a revoked token gets one new login and the call succeeds; a wrong secret_id is WM_ERR_AUTHENTICATION without the secret', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const { roleId, secretId } = vault.addAppRole('wm', { policies: ['wm'], ttlSeconds: 3600 });
    const h = await harness(t, vault, { auth: { method: 'approle', roleId: { file: await secretFile(dir, 'role-id', roleId) }, secretId: { file: await secretFile(dir, 'secret-id', secretId) } } });
    await h.proxy.putSecret({ name: 'rv', value: 'v' });
    const accessor = vault.logins[0]?.accessor;
    // Revoke the plugin's token behind its back.
    assert.ok(vault.revokeAccessor(accessor as string));
    assert.deepEqual((await h.proxy.getSecret({ name: 'rv' })).value, 'v');
    assert.equal(vault.logins.length, 2);

    const wrong = 'wrong-secret-id-canary-7731';
    const bad = await harness(t, vault, { auth: { method: 'approle', roleId, secretId: { file: await secretFile(dir, 'bad', wrong) } } });
    const err = await rejection(() => bad.proxy.getSecret({ name: 'rv' }));
    assert.equal(err.code, 'WM_ERR_AUTHENTICATION');
    assert.match(err.message, /invalid role or secret ID/);
    assert.ok(!JSON.stringify(err).includes(wrong));
    assert.ok(!JSON.stringify(bad.logs).includes(wrong));
  });

  it('JWT: logs in with role and a signed token from a file; a token from another issuer is refused', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const issuer = jwtIssuer();
    vault.addJwtRole('jwt', 'ci', { publicKeyPem: issuer.publicKeyPem, policies: ['wm'], boundAudiences: ['vault'] });
    const h = await harness(t, vault, { auth: { method: 'jwt', role: 'ci', jwt: { file: await secretFile(dir, 'jwt', issuer.sign({ aud: 'vault', sub: 'wm' })) } } });
    await h.proxy.putSecret({ name: 'j', value: 'v' });
    assert.equal(vault.logins[0]?.mount, 'jwt');

    const other = jwtIssuer();
    const forged = other.sign({ aud: 'vault', sub: 'wm' });
    const bad = await harness(t, vault, { auth: { method: 'jwt', role: 'ci', jwt: { file: await secretFile(dir, 'forged', forged) } } });
    const err = await rejection(() => bad.proxy.getSecret({ name: 'j' }));
    assert.equal(err.code, 'WM_ERR_AUTHENTICATION');
    assert.ok(!JSON.stringify(err).includes(forged));
  });

  it('Kubernetes: logs in with the service-account token file, re-read at every login', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const cluster = jwtIssuer();
    vault.addJwtRole('kubernetes', 'wm', { publicKeyPem: cluster.publicKeyPem, policies: ['wm'], serviceAccountNames: ['worker-manager'], serviceAccountNamespaces: ['ci'], ttlSeconds: 3600 });
    const file = await secretFile(dir, 'sa-token', cluster.sign({ sub: 'system:serviceaccount:ci:worker-manager' }));
    const h = await harness(t, vault, { auth: { method: 'kubernetes', role: 'wm', jwtFile: file } });
    await h.proxy.putSecret({ name: 'k', value: 'v' });
    assert.equal(vault.logins[0]?.mount, 'kubernetes');

    const wrongSa = await secretFile(dir, 'other-sa', cluster.sign({ sub: 'system:serviceaccount:ci:someone-else' }));
    const bad = await harness(t, vault, { auth: { method: 'kubernetes', role: 'wm', jwtFile: wrongSa } });
    assert.equal((await rejection(() => bad.proxy.getSecret({ name: 'k' }))).code, 'WM_ERR_AUTHENTICATION');
  });

  it('an unreadable credential file fails setup with WM_ERR_CONFIGURATION naming the file', async (t) => {
    const vault = await startVault(t);
    const err = await rejection(() =>
      createPluginHarness(plugin, { config: { address: vault.address, auth: { method: 'approle', roleId: 'r', secretId: { file: '/nonexistent/secret-id' } } } }),
    );
    assert.equal(err.code, 'WM_ERR_CONFIGURATION');
    assert.match(err.message, /\/nonexistent\/secret-id/);
  });
});
