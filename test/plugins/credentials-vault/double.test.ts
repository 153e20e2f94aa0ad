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

  it('transit: vault:vN: ciphertexts with key_version, create to encrypt under a new key, the 400 strings, rotation and min_decryption_version', async (t) => {
    const vault = await startVault(t);
    vault.mountTransit('transit');
    const root = vault.rootToken;
    type Data = { data: Record<string, unknown>; mount_type: string };
    assert.equal(((await call(vault.address, root, 'POST', 'transit/keys/k')).body as Data).data['latest_version'], 1);
    const sealed = await call(vault.address, root, 'POST', 'transit/encrypt/k', { plaintext: 'aGVsbG8=' });
    const sealedBody = sealed.body as Data;
    assert.equal(sealed.status, 200);
    assert.match(sealedBody.data['ciphertext'] as string, /^vault:v1:[A-Za-z0-9+/]+=*$/);
    assert.deepEqual([sealedBody.data['key_version'], sealedBody.mount_type], [1, 'transit']);
    assert.deepEqual(((await call(vault.address, root, 'POST', 'transit/decrypt/k', { ciphertext: sealedBody.data['ciphertext'] })).body as Data).data, { plaintext: 'aGVsbG8=' });

    const refused = async (p: string, body: unknown): Promise<unknown> => (await call(vault.address, root, 'POST', p, body)).body;
    assert.deepEqual(await refused('transit/decrypt/none', { ciphertext: 'vault:v1:AAAA' }), { errors: ['encryption key not found'] });
    assert.deepEqual(await refused('transit/rewrap/none', { ciphertext: 'vault:v1:AAAA' }), { errors: ['encryption key not found'] });
    assert.deepEqual(await refused('transit/keys/none/rotate', {}), { errors: ['key not found'] });
    assert.deepEqual(await refused('transit/encrypt/k', {}), { errors: ['missing plaintext to encrypt'] });
    assert.match(((await refused('transit/encrypt/k', { plaintext: 'not base64!' })) as { errors: string[] }).errors[0] ?? '', /^illegal base64 data at input byte \d+$/);
    assert.deepEqual(await refused('transit/decrypt/k', {}), { errors: ['missing ciphertext to decrypt'] });
    for (const [ciphertext, error] of [
      ['v1:AAAA', 'invalid ciphertext: no prefix'],
      ['vault:v1', 'invalid ciphertext: wrong number of fields'],
      ['vault:vX:AAAA', 'invalid ciphertext: version number could not be decoded'],
      ['vault:v2:AAAA', 'invalid ciphertext: version is too new'],
      ['vault:v1:!!!!', 'invalid ciphertext: could not decode base64'],
      ['vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'invalid ciphertext: unable to decrypt'],
    ]) assert.deepEqual(await refused('transit/decrypt/k', { ciphertext }), { errors: [error] }, ciphertext);

    const rotated = (await call(vault.address, root, 'POST', 'transit/keys/k/rotate', {})).body as Data;
    assert.equal(rotated.data['latest_version'], 2);
    assert.deepEqual(Object.keys(rotated.data['keys'] as object), ['1', '2']);
    const rewrapped = ((await call(vault.address, root, 'POST', 'transit/rewrap/k', { ciphertext: sealedBody.data['ciphertext'] })).body as Data).data;
    assert.match(rewrapped['ciphertext'] as string, /^vault:v2:/);
    assert.equal(rewrapped['key_version'], 2);
    assert.deepEqual(await refused('transit/keys/k/config', { min_decryption_version: 3 }), { errors: ['cannot set min decryption version of 3, latest key version is 2'] });
    assert.equal(((await call(vault.address, root, 'POST', 'transit/keys/k/config', { min_decryption_version: 2 })).body as Data).data['min_decryption_version'], 2);
    assert.deepEqual(await refused('transit/decrypt/k', { ciphertext: sealedBody.data['ciphertext'] }), { errors: ['ciphertext or signature version is disallowed by policy (too old)'] });
    assert.deepEqual(((await call(vault.address, root, 'POST', 'transit/decrypt/k', { ciphertext: rewrapped['ciphertext'] })).body as Data).data, { plaintext: 'aGVsbG8=' });
    assert.deepEqual(await call(vault.address, root, 'GET', 'transit/keys/none'), { status: 404, body: { errors: [] } });

    // The existence check: encrypt under a key that does not exist is a create.
    vault.setPolicy('enc', [{ path: 'transit/encrypt/*', capabilities: ['update'] }]);
    vault.setPolicy('enc-create', [{ path: 'transit/encrypt/*', capabilities: ['create', 'update'] }]);
    const updateOnly = vault.createToken({ policies: ['enc'] });
    assert.deepEqual(await call(vault.address, updateOnly, 'POST', 'transit/encrypt/fresh', { plaintext: 'aGk=' }), { status: 403, body: { errors: ['permission denied'] } });
    assert.equal((await call(vault.address, updateOnly, 'POST', 'transit/encrypt/k', { plaintext: 'aGk=' })).status, 200);
    assert.equal((await call(vault.address, vault.createToken({ policies: ['enc-create'] }), 'POST', 'transit/encrypt/fresh', { plaintext: 'aGk=' })).status, 200);
    assert.equal(vault.transit('transit').inspect('fresh')?.latestVersion, 1);
  });

  it('leases: creds carry the lease at the top level; renew answers at the top level, capped at max_ttl with a warning; revoke and lookup; default renews, never revokes', async (t) => {
    const vault = await startVault(t);
    vault.mountDatabase('database', { r: { defaultTtlSeconds: 10, maxTtlSeconds: 15 }, fixed: { defaultTtlSeconds: 10, maxTtlSeconds: 0, renewable: false } });
    const root = vault.rootToken;
    const issued = await call(vault.address, root, 'GET', 'database/creds/r');
    const body = issued.body as { lease_id: string; lease_duration: number; renewable: boolean; data: Record<string, string>; mount_type: string };
    assert.equal(issued.status, 200);
    assert.match(body.lease_id, /^database\/creds\/r\/.+/);
    assert.deepEqual([body.lease_duration, body.renewable, Object.keys(body.data).sort(), body.mount_type], [10, true, ['password', 'username'], 'database']);
    assert.deepEqual(await call(vault.address, root, 'GET', 'database/creds/nope'), { status: 400, body: { errors: ['unknown role: nope'] } });
    assert.deepEqual(vault.leases.live().map((l) => l.leaseId), [body.lease_id]);

    // Only the default policy: renew and lookup, no revoke.
    const plain = vault.createToken({ policies: [] });
    const renewed = await call(vault.address, plain, 'PUT', 'sys/leases/renew', { lease_id: body.lease_id, increment: 3600 });
    const r = renewed.body as { lease_id: string; lease_duration: number; renewable: boolean; data: unknown; warnings: string[] };
    assert.equal(renewed.status, 200);
    assert.deepEqual([r.lease_id, r.renewable, r.data], [body.lease_id, true, null]);
    assert.ok(r.lease_duration <= 15 && r.lease_duration >= 13, `capped at the max TTL: ${r.lease_duration}`);
    assert.match(r.warnings[0] ?? '', /exceeded the effective max_ttl .* capped accordingly/);
    const looked = (await call(vault.address, plain, 'PUT', 'sys/leases/lookup', { lease_id: body.lease_id })).body as { data: Record<string, unknown> };
    assert.deepEqual(Object.keys(looked.data).sort(), ['expire_time', 'id', 'issue_time', 'last_renewal', 'renewable', 'ttl']);
    assert.equal(looked.data['id'], body.lease_id);
    assert.deepEqual(await call(vault.address, plain, 'PUT', 'sys/leases/revoke', { lease_id: body.lease_id }), { status: 403, body: { errors: ['permission denied'] } });

    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/revoke', { lease_id: body.lease_id }), { status: 204, body: undefined });
    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/revoke', { lease_id: 'database/creds/r/unknown' }), { status: 204, body: undefined }, 'an unknown lease is no error');
    assert.equal(vault.leases.live().length, 0);
    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/renew', { lease_id: body.lease_id }), { status: 400, body: { errors: ['lease not found'] } });
    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/lookup', { lease_id: body.lease_id }), { status: 400, body: { errors: ['invalid lease'] } });

    const fixed = (await call(vault.address, root, 'GET', 'database/creds/fixed')).body as { lease_id: string; renewable: boolean };
    assert.equal(fixed.renewable, false);
    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/renew', { lease_id: fixed.lease_id }), { status: 400, body: { errors: ['lease is not renewable'] } });
    const ending = (await call(vault.address, root, 'GET', 'database/creds/r')).body as { lease_id: string };
    vault.leases.expireNow(ending.lease_id);
    assert.deepEqual(await call(vault.address, root, 'PUT', 'sys/leases/renew', { lease_id: ending.lease_id }), { status: 400, body: { errors: ['lease expired'] } });
    assert.equal(vault.leases.leases().find((l) => l.leaseId === ending.lease_id)?.state, 'expired');
  });
});
