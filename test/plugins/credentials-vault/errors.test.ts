import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { harness, rejection, secretFile, startVault, tempDir, visible } from './helpers.ts';

const CANARY = 'canary-vault-value-5f1e9c';

describe('credentials-vault errors', () => {
  it('a path the token policy does not grant: 403 permission denied becomes WM_ERR_PERMISSION_DENIED, without the value', async (t) => {
    const vault = await startVault(t);
    vault.setPolicy('read-only', [{ path: 'secret/data/wm/*', capabilities: ['read'] }, { path: 'secret/metadata/wm/*', capabilities: ['read'] }]);
    const dir = await tempDir(t);
    const h = await harness(t, vault, { auth: { method: 'token', token: { file: await secretFile(dir, 't', vault.createToken({ policies: ['read-only'] })) } } });
    const err = await rejection(() => h.proxy.putSecret({ name: 'denied', value: CANARY }));
    assert.equal(err.code, 'WM_ERR_PERMISSION_DENIED');
    assert.deepEqual(err.details?.['vaultErrors'], ['permission denied']);
    assert.equal(err.details?.['status'], 403);
    assert.ok(vault.requests.some((r) => r.status === 403 && r.path === 'secret/data/wm/denied'));
    const other = await harness(t, vault, { pathPrefix: 'elsewhere' });
    assert.equal((await rejection(() => other.proxy.getSecret({ name: 'x' }))).code, 'WM_ERR_PERMISSION_DENIED', 'a prefix outside the policy');
    assert.ok(!visible(err).includes(CANARY) && !visible(h.logs).includes(CANARY));
  });

  it('a sealed Vault: a transient WM_ERR_NETWORK whose message says sealed; it works again once unsealed', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault);
    await h.proxy.putSecret({ name: 's', value: 'v' });
    vault.sealed = true;
    const err = await rejection(() => h.proxy.getSecret({ name: 's' }));
    assert.equal(err.code, 'WM_ERR_NETWORK');
    assert.equal(err.transient, true);
    assert.equal(err.details?.['reason'], 'sealed');
    assert.match(err.message, /sealed/);
    const write = await rejection(() => h.proxy.putSecret({ name: 's', value: CANARY }));
    assert.equal(write.details?.['reason'], 'sealed');
    assert.ok(!visible(write).includes(CANARY));
    vault.sealed = false;
    assert.equal((await h.proxy.getSecret({ name: 's' })).value, 'v');
  });

  it('a mount that does not exist: 404 no handler for route becomes WM_ERR_CONFIGURATION', async (t) => {
    const vault = await startVault(t);
    vault.setPolicy('wm', [{ path: 'kv/*', capabilities: ['create', 'read', 'update'] }]);
    const h = await harness(t, vault, { mount: 'kv' });
    const err = await rejection(() => h.proxy.getSecret({ name: 'x' }));
    assert.equal(err.code, 'WM_ERR_CONFIGURATION');
    assert.equal(err.details?.['reason'], 'no-mount');
    assert.match(err.message, /no secrets engine mounted/);
  });

  it('an unreachable Vault is a transient WM_ERR_NETWORK; a Vault that does not answer in time is WM_ERR_TIMEOUT', async (t) => {
    const vault = await startVault(t);
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const dir = await tempDir(t);
    const auth = { method: 'token', token: { file: await secretFile(dir, 't', vault.createToken({ policies: ['wm'], ttlSeconds: 0 })) } };
    const gone = await harness(t, vault, { address: `http://127.0.0.1:${closed}`, auth });
    const err = await rejection(() => gone.proxy.putSecret({ name: 'x', value: CANARY }));
    assert.equal(err.code, 'WM_ERR_NETWORK');
    assert.equal(err.transient, true);
    assert.equal(err.details?.['reason'], 'unreachable');
    assert.ok(!visible(err).includes(CANARY));

    const slow = await harness(t, vault, { requestTimeoutMs: 2000, readRetries: 0, auth });
    await slow.proxy.putSecret({ name: 'x', value: 'v' });
    // getSecret of the current version reads the key's latest version first (one round trip when it is current).
    vault.fault({ kind: 'hang', match: /^secret\/data\/wm\/x$/, method: 'GET' });
    const timeout = await rejection(() => slow.proxy.getSecret({ name: 'x' }));
    assert.equal(timeout.code, 'WM_ERR_TIMEOUT');
  });

  it('reads are retried after a 5xx, a 429 and a connection reset; a write is not retried after a 5xx', async (t) => {
    const vault = await startVault(t);
    const h = await harness(t, vault, { readRetries: 3 });
    await h.proxy.putSecret({ name: 'f', value: 'v' });
    // getSecret of the current version starts with a read of the latest version (GET data, no version).
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], match: /^secret\/data\/wm\/f$/, method: 'GET' });
    vault.fault({ kind: 'status', status: 429, errors: ['request path "secret/data/wm/f": rate limit quota exceeded'], match: /^secret\/data\/wm\/f$/, method: 'GET' });
    vault.fault({ kind: 'reset', match: /^secret\/data\/wm\/f$/, method: 'GET' });
    assert.equal((await h.proxy.getSecret({ name: 'f' })).value, 'v');
    assert.equal(vault.requests.filter((r) => r.path === 'secret/data/wm/f' && r.method === 'GET').length, 4, 'three failures, then the answer');

    vault.fault({ kind: 'status', status: 502, match: /^secret\/data\/wm\/f$/, method: 'POST' });
    const err = await rejection(() => h.proxy.putSecret({ name: 'f', value: CANARY }));
    assert.equal(err.code, 'WM_ERR_NETWORK');
    assert.equal(err.details?.['status'], 502);
    assert.equal(vault.requests.filter((r) => r.path === 'secret/data/wm/f' && r.method === 'POST').length, 2, 'the first put, then the one failed attempt');
    vault.fault({ kind: 'status', status: 429, errors: ['rate limit quota exceeded'], times: 10 });
    const limited = await rejection(() => h.proxy.getSecret({ name: 'f' }));
    assert.equal(limited.details?.['reason'], 'rate-limited');
    assert.ok(!visible([err, limited, h.logs]).includes(CANARY));
  });

  it('canary values never appear in errors or logs, across every failure of a write', async (t) => {
    const vault = await startVault(t);
    const dir = await tempDir(t);
    const token = vault.createToken({ policies: ['wm'], ttlSeconds: 0 });
    const h = await harness(t, vault, { maxValueBytes: 64, auth: { method: 'token', token: { file: await secretFile(dir, 't', token) } } });
    const errors = [];
    errors.push(await rejection(() => h.proxy.putSecret({ name: 'c', value: CANARY.repeat(10) })));
    errors.push(await rejection(() => h.proxy.putSecret({ name: 'c', value: { [`${CANARY} key`]: 'x' } })));
    await h.proxy.putSecret({ name: 'c', value: CANARY });
    errors.push(await rejection(() => h.proxy.putSecret({ name: 'c', value: 'other', requestToken: 'tok-00001' }).then(() => h.proxy.putSecret({ name: 'c', value: CANARY, requestToken: 'tok-00001' }))));
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], method: 'POST' });
    errors.push(await rejection(() => h.proxy.putSecret({ name: 'c', value: CANARY })));
    vault.revokeToken(token);
    errors.push(await rejection(() => h.proxy.putSecret({ name: 'c', value: CANARY })));
    assert.deepEqual(errors.map((e) => e.code), ['WM_ERR_SECRET_SIZE_LIMIT', 'WM_ERR_SECRET_INVALID_FORMAT', 'WM_ERR_CONFLICT', 'WM_ERR_NETWORK', 'WM_ERR_AUTHENTICATION']);
    const shown = visible([errors, h.logs]);
    assert.ok(!shown.includes(CANARY), shown);
    assert.ok(!shown.includes(token));
  });
});
