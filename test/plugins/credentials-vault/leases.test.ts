import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { describe, it } from 'node:test';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import type { DatabaseRole, LeaseView } from '../../doubles/vaultLeases.ts';
import type { VaultDouble } from '../../doubles/vault.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { harness, leasePolicy, rejection, startVault, tempDir, tokenAuth, visible } from './helpers.ts';

const DYNAMIC = { dynamic: [{ prefix: 'db', mount: 'database' }], leaseRenewFraction: 0.3 };

/** A Vault with a database engine whose roles are `roles`, and the policies of the README. */
async function leaseVault(t: TestContext, roles: Record<string, DatabaseRole>): Promise<VaultDouble> {
  const vault = await startVault(t);
  vault.mountDatabase('database', roles);
  vault.setPolicy('db', leasePolicy('database'));
  return vault;
}

/** A plugin instance serving `db/<role>` from the engine, as `policies`; instances given one `stateDir` are one instance's threads. */
async function dynamicHarness(t: TestContext, vault: VaultDouble, options: { policies?: string[]; stateDir?: string; config?: Record<string, unknown> } = {}): Promise<PluginHarness<'credentials'>> {
  return harness(t, vault, { ...DYNAMIC, ...options.config, auth: await tokenAuth(t, vault, options.policies ?? ['wm', 'db']) }, options.stateDir === undefined ? {} : { stateDir: options.stateDir });
}

/** The lease the double issued with these credentials. */
function leaseWith(vault: VaultDouble, value: unknown): LeaseView {
  const { username, password } = value as { username: string; password: string };
  const lease = vault.leases.leases().find((l) => l.username === username && l.password === password);
  assert.ok(lease !== undefined, 'the value is a credential the double issued');
  return lease;
}

/** Everything under a folder, as text. */
async function folderText(dir: string): Promise<string> {
  const files = await readdir(dir, { recursive: true, withFileTypes: true });
  const texts = await Promise.all(files.filter((f) => f.isFile()).map((f) => readFile(path.join(f.parentPath, f.name), 'utf8')));
  return texts.join('\n');
}

describe('credentials-vault dynamic secrets and their leases (secret.lease) against the Vault double', () => {
  it('a read issues a credential under a lease: its version names the lease without showing its id, and every read issues another', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 600, maxTtlSeconds: 0 } });
    const h = await dynamicHarness(t, vault);
    const first = await h.proxy.getSecret({ name: 'db/app' });
    assert.match(first.version, /^lease-[0-9a-f]{16}$/);
    assert.deepEqual(first.lease, { renewable: true });
    assert.equal(first.leaseTtlMs, undefined, 'a lease the plugin renews has no end the host must act on');
    const lease = leaseWith(vault, first.value);
    assert.deepEqual(Object.keys(first.value).sort(), ['password', 'username']);
    assert.equal(lease.state, 'live');
    assert.match(lease.leaseId, /^database\/creds\/app\//);
    assert.ok(!lease.leaseId.includes(first.version.slice('lease-'.length)));
    assert.ok(vault.requests.some((r) => r.method === 'GET' && r.path === 'database/creds/app' && r.status === 200));

    const second = await h.proxy.getSecret({ name: 'db/app', version: 'current' });
    assert.notEqual(second.version, first.version);
    assert.equal(vault.leases.live().length, 2);
    const listed = await h.proxy.listVersions({ name: 'db/app' });
    assert.deepEqual(listed.map((v) => [v.version, v.status, v.stages]).sort(), [[first.version, 'active', []], [second.version, 'active', []]].sort());
    assert.ok(listed.every((v) => v.expiresAt !== undefined && Date.parse(v.expiresAt) > Date.now()));
    assert.deepEqual(await h.proxy.describe({ name: 'db/app' }), { name: 'db/app', versions: 2 });
    const again = await rejection(() => h.proxy.getSecret({ name: 'db/app', version: first.version }));
    assert.equal(again.code, 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'an issued credential is never kept, so never read again');
    assert.ok(!visible([h.logs, again]).includes(lease.leaseId), 'no lease id in logs or errors');
  });

  it('the lease is renewed (PUT sys/leases/renew) before it expires, and the credential outlives its first TTL', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 10, maxTtlSeconds: 0 } });
    const h = await dynamicHarness(t, vault);
    const value = await h.proxy.getSecret({ name: 'db/app' });
    const issued = leaseWith(vault, value.value);
    // Renewal is due at 0.3 of the TTL (3 s, leaving 7 s for a busy machine); the double answers 200 only while the lease is live.
    await waitFor(() => vault.requests.some((r) => r.method === 'PUT' && r.path === 'sys/leases/renew' && r.status === 200), 'a renewal of the lease');
    const firstEnd = issued.expiresAt;
    await waitFor(() => Date.now() > firstEnd + 500, 'the end of the first TTL');
    const now = leaseWith(vault, value.value);
    assert.equal(now.state, 'live', `renewed ${now.renewals} times, live past its first TTL`);
    assert.ok(now.renewals >= 1);
    assert.ok(!vault.requests.some((r) => r.path === 'sys/leases/renew' && r.status !== 200), 'every renewal came while the lease was live');
  });

  it('releaseLease revokes the lease at Vault from any thread of the instance, and is idempotent; the thread that read it stops renewing it', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 6, maxTtlSeconds: 0 } });
    const stateDir = await tempDir(t);
    const reader = await dynamicHarness(t, vault, { stateDir });
    const other = await dynamicHarness(t, vault, { stateDir });
    const value = await reader.proxy.getSecret({ name: 'db/app' });
    assert.deepEqual(await other.proxy.releaseLease({ name: 'db/app', version: value.version }), { released: true });
    assert.equal(leaseWith(vault, value.value).state, 'revoked');
    assert.ok(vault.requests.some((r) => r.method === 'PUT' && r.path === 'sys/leases/revoke' && r.status === 204));
    assert.deepEqual(await reader.proxy.releaseLease({ name: 'db/app', version: value.version }), { released: false });
    assert.deepEqual(await reader.proxy.releaseLease({ name: 'db/other', version: value.version }), { released: false }, 'another name never releases it');
    assert.deepEqual(await reader.proxy.listVersions({ name: 'db/app' }), []);
    // Barrier: a lease read after the release is renewed after the released one would have been, by the same thread.
    const later = await reader.proxy.getSecret({ name: 'db/app' });
    await waitFor(() => leaseWith(vault, later.value).renewals > 0 || undefined, 'a renewal of the later lease');
    assert.equal(leaseWith(vault, value.value).renewals, 0, 'the released lease was not renewed');
  });

  it('a restarted plugin takes over its leases from the state folder: it keeps renewing them and can release them', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 6, maxTtlSeconds: 0 } });
    const stateDir = await tempDir(t);
    const before = await dynamicHarness(t, vault, { stateDir });
    const value = await before.proxy.getSecret({ name: 'db/app' });
    await before.close();
    assert.equal(leaseWith(vault, value.value).state, 'live', 'closing the plugin revokes nothing: workers may still use it');
    const after = await dynamicHarness(t, vault, { stateDir });
    await waitFor(() => leaseWith(vault, value.value).renewals > 0 || undefined, 'a renewal by the restarted plugin');
    assert.deepEqual(await after.proxy.releaseLease({ name: 'db/app', version: value.version }), { released: true });
    assert.equal(leaseWith(vault, value.value).state, 'revoked');
  });

  it('at the max TTL Vault grants less than asked: the lease is not renewed again, a warning says when it ends, and it ends then', async (t) => {
    // Renewals at 1.8 s (granted 6 s) and about 3.6 s (granted what is left of the 9 s: less than asked).
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 6, maxTtlSeconds: 9 } });
    const h = await dynamicHarness(t, vault);
    const value = await h.proxy.getSecret({ name: 'db/app' });
    const warning = await waitFor(() => h.logs.find((l) => l.message.startsWith('dynamic secret lease reached its max TTL')), 'the max-TTL warning');
    assert.equal(warning.fields?.['version'], value.version);
    const renewals = leaseWith(vault, value.value).renewals;
    await waitFor(() => leaseWith(vault, value.value).state === 'expired', 'the end of the lease at its max TTL');
    assert.equal(leaseWith(vault, value.value).renewals, renewals, 'no renewal after the capped one');
    assert.ok(!vault.requests.some((r) => r.path === 'sys/leases/renew' && r.status !== 200));
  });

  it('a lease Vault issues as not renewable: its TTL is the value\'s leaseTtlMs, so the host renews the value instead', async (t) => {
    const vault = await leaseVault(t, { fixed: { defaultTtlSeconds: 30, maxTtlSeconds: 0, renewable: false } });
    const h = await dynamicHarness(t, vault);
    const value = await h.proxy.getSecret({ name: 'db/fixed' });
    assert.deepEqual(value.lease, { renewable: false });
    assert.equal(value.leaseTtlMs, 30_000);
    assert.deepEqual(await h.proxy.releaseLease({ name: 'db/fixed', version: value.version }), { released: true });
    assert.equal(leaseWith(vault, value.value).state, 'revoked');
  });

  it('errors: unknown role, names below a role, writes on a dynamic name, and a release Vault refuses (kept for a retry)', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 600, maxTtlSeconds: 0 } });
    const stateDir = await tempDir(t);
    // No revoke grant: `db-read` may read credentials only.
    vault.setPolicy('db-read', [{ path: 'database/creds/*', capabilities: ['read'] }]);
    const h = await dynamicHarness(t, vault, { stateDir, policies: ['wm', 'db-read'] });
    const unknown = await rejection(() => h.proxy.getSecret({ name: 'db/nope' }));
    assert.equal(unknown.code, 'WM_ERR_SECRET_NOT_FOUND');
    assert.equal(unknown.details?.['reason'], 'unknown-role');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'db/app/deeper' }))).code, 'WM_ERR_VALIDATION');
    for (const call of [
      () => h.proxy.putSecret({ name: 'db/app', value: 'x' }),
      () => h.proxy.createPendingVersion({ name: 'db/app' }),
      () => h.proxy.promoteVersion({ name: 'db/app', version: 'pending' }),
      () => h.proxy.revokeVersion({ name: 'db/app', version: 'previous' }),
    ]) assert.equal((await rejection(call)).code, 'WM_ERR_COMPATIBILITY');
    assert.equal((await h.proxy.putSecret({ name: 'kv/still-works', value: 'v' })).version, '1', 'other names are KV secrets as before');

    const value = await h.proxy.getSecret({ name: 'db/app' });
    const refused = await rejection(() => h.proxy.releaseLease({ name: 'db/app', version: value.version }));
    assert.equal(refused.code, 'WM_ERR_PERMISSION_DENIED');
    assert.equal(leaseWith(vault, value.value).state, 'live');
    const granted = await dynamicHarness(t, vault, { stateDir });
    assert.deepEqual(await granted.proxy.releaseLease({ name: 'db/app', version: value.version }), { released: true }, 'the retry finds the lease');
  });

  it('neither the credential nor the lease id shows in a log line or an error; the state folder holds the lease id, never the credential', async (t) => {
    const vault = await leaseVault(t, { app: { defaultTtlSeconds: 4, maxTtlSeconds: 0 } });
    const stateDir = await tempDir(t);
    const h = await dynamicHarness(t, vault, { stateDir });
    const value = await h.proxy.getSecret({ name: 'db/app' });
    const lease = leaseWith(vault, value.value);
    await waitFor(() => leaseWith(vault, value.value).renewals > 0 || undefined, 'a renewal');
    const errors = [];
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], match: /^sys\/leases\/revoke$/, times: 2 });
    errors.push(await rejection(() => h.proxy.releaseLease({ name: 'db/app', version: value.version })));
    vault.sealed = true;
    errors.push(await rejection(() => h.proxy.getSecret({ name: 'db/app' })));
    vault.sealed = false;
    assert.deepEqual(errors.map((e) => e.code), ['WM_ERR_NETWORK', 'WM_ERR_NETWORK']);
    const seen = visible([h.logs, errors]);
    for (const secret of [lease.password, lease.username, lease.leaseId]) assert.ok(!seen.includes(secret), 'a credential or lease id in a log or an error');
    const state = await folderText(stateDir);
    assert.ok(state.includes(lease.leaseId), 'the lease id is kept, to renew and revoke it');
    assert.ok(!state.includes(lease.password) && !state.includes(lease.username), 'the credential is never kept');
  });
});
