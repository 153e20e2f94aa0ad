import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startVault } from './helpers.ts';

/** Raw HTTP against the double, to pin the wire format of reference/protocols.md §1. */
async function call(address: string, token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${address}/v1/${path}`, {
    method,
    headers: { ...(token === undefined ? {} : { 'X-Vault-Token': token }), 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

describe('Vault double self-tests (protocols.md §1)', () => {
  it('check-and-set: the exact 400 strings, cas 0 only for an absent key, cas_required', async (t) => {
    const vault = await startVault(t);
    const root = vault.rootToken;
    assert.deepEqual(await call(vault.address, root, 'POST', 'secret/data/k', {}), { status: 400, body: { errors: ['no data provided'] } });
    const first = await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '1' }, options: { cas: 0 } });
    assert.equal(first.status, 200);
    assert.deepEqual((first.body as { data: Record<string, unknown> }).data, { ...(first.body as { data: Record<string, unknown> }).data, version: 1, deletion_time: '', destroyed: false, custom_metadata: null });
    assert.deepEqual(await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '2' }, options: { cas: 0 } }), { status: 400, body: { errors: ['check-and-set parameter did not match the current version'] } });
    assert.equal((await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '2' }, options: { cas: 1 } })).status, 200);
    assert.equal((await call(vault.address, root, 'POST', 'secret/metadata/k', { cas_required: true })).status, 204);
    assert.deepEqual(await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '3' } }), { status: 400, body: { errors: ['check-and-set parameter required for this call'] } });
  });

  it('404 envelopes: {"errors":[]} for an unknown key or version, the full envelope with data null for deleted and destroyed versions', async (t) => {
    const vault = await startVault(t);
    const root = vault.rootToken;
    assert.deepEqual(await call(vault.address, root, 'GET', 'secret/data/none'), { status: 404, body: { errors: [] } });
    await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '1' } });
    await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '2' } });
    assert.deepEqual(await call(vault.address, root, 'GET', 'secret/data/k?version=7'), { status: 404, body: { errors: [] } });
    assert.equal((await call(vault.address, root, 'POST', 'secret/delete/k', { versions: [1] })).status, 204);
    const deleted = await call(vault.address, root, 'GET', 'secret/data/k?version=1');
    assert.equal(deleted.status, 404);
    const d = deleted.body as { data: { data: unknown; metadata: { deletion_time: string; destroyed: boolean; version: number } } };
    assert.equal(d.data.data, null);
    assert.ok(d.data.metadata.deletion_time !== '' && d.data.metadata.destroyed === false && d.data.metadata.version === 1);
    assert.equal((await call(vault.address, root, 'POST', 'secret/undelete/k', { versions: [1] })).status, 204);
    assert.equal((await call(vault.address, root, 'GET', 'secret/data/k?version=1')).status, 200);
    assert.equal((await call(vault.address, root, 'POST', 'secret/destroy/k', { versions: [1] })).status, 204);
    const destroyed = (await call(vault.address, root, 'GET', 'secret/data/k?version=1')).body as { data: { data: unknown; metadata: { destroyed: boolean } } };
    assert.deepEqual([destroyed.data.data, destroyed.data.metadata.destroyed], [null, true]);
    assert.equal((await call(vault.address, root, 'POST', 'secret/undelete/k', { versions: [1] })).status, 204);
    assert.equal((await call(vault.address, root, 'GET', 'secret/data/k?version=1')).status, 404, 'destroy cannot be undone');
    const meta = (await call(vault.address, root, 'GET', 'secret/metadata/k')).body as { data: Record<string, unknown> };
    assert.equal(meta.data['current_version'], 2);
    assert.equal(meta.data['delete_version_after'], '0s');
    assert.deepEqual(Object.keys(meta.data['versions'] as object), ['1', '2']);
    assert.equal((await call(vault.address, root, 'DELETE', 'secret/metadata/k')).status, 204);
    await call(vault.address, root, 'POST', 'secret/data/k', { data: { a: '1' } });
    assert.equal(((await call(vault.address, root, 'GET', 'secret/metadata/k')).body as { data: { current_version: number } }).data.current_version, 1, 'after a metadata delete, versions start again at 1');
  });

  it('tokens and policies: 403 permission denied off-policy, 403 with invalid token for an unknown or expired token, create vs update by existence', async (t) => {
    const vault = await startVault(t);
    vault.setPolicy('create-only', [{ path: 'secret/data/app/*', capabilities: ['create'] }, { path: 'secret/data/app/locked', capabilities: ['deny'] }]);
    const token = vault.createToken({ policies: ['create-only'] });
    assert.equal((await call(vault.address, token, 'POST', 'secret/data/app/a', { data: { a: '1' } })).status, 200, 'create on a new key');
    assert.deepEqual(await call(vault.address, token, 'POST', 'secret/data/app/a', { data: { a: '2' } }), { status: 403, body: { errors: ['permission denied'] } }, 'an existing key needs update');
    assert.deepEqual(await call(vault.address, token, 'GET', 'secret/data/app/a'), { status: 403, body: { errors: ['permission denied'] } });
    assert.equal((await call(vault.address, token, 'POST', 'secret/data/app/locked', { data: { a: '1' } })).status, 403, 'deny wins');
    assert.deepEqual(await call(vault.address, 'hvs.unknown', 'GET', 'secret/data/app/a'), { status: 403, body: { errors: ['permission denied', 'invalid token'] } });
    assert.equal((await call(vault.address, token, 'GET', 'auth/token/lookup-self')).status, 200, 'the default policy');
    const root = vault.rootToken;
    assert.deepEqual(await call(vault.address, root, 'POST', 'auth/token/renew-self', {}), { status: 400, body: { errors: ['lease is not renewable'] } });
    assert.deepEqual(await call(vault.address, root, 'GET', 'nomount/data/x'), { status: 404, body: { errors: ['no handler for route "nomount/data/x". route entry not found.'] } });
    vault.sealed = true;
    assert.deepEqual(await call(vault.address, root, 'GET', 'secret/data/app/a'), { status: 503, body: { errors: ['Vault is sealed'] } });
    assert.equal((await call(vault.address, undefined, 'GET', 'sys/health')).status, 503);
  });

  it('AppRole login: 400 invalid role or secret ID; renew-self caps the TTL at the max TTL', async (t) => {
    const vault = await startVault(t);
    const { roleId, secretId } = vault.addAppRole('r', { policies: [], ttlSeconds: 60 });
    assert.deepEqual(await call(vault.address, undefined, 'POST', 'auth/approle/login', { role_id: roleId, secret_id: 'nope' }), { status: 400, body: { errors: ['invalid role or secret ID'] } });
    const ok = (await call(vault.address, undefined, 'POST', 'auth/approle/login', { role_id: roleId, secret_id: secretId })).body as { auth: { client_token: string; lease_duration: number; renewable: boolean } };
    assert.equal(ok.auth.lease_duration, 60);
    assert.equal(ok.auth.renewable, true);
    const capped = vault.createToken({ policies: [], ttlSeconds: 10, maxTtlSeconds: 20 });
    const renewed = (await call(vault.address, capped, 'POST', 'auth/token/renew-self', { increment: 3600 })).body as { auth: { lease_duration: number } };
    assert.ok(renewed.auth.lease_duration <= 20);
  });
});
