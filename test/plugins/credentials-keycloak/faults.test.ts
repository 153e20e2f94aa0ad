import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { assertNoCanary, errorText, expectCode, realmSecrets, ROTATOR, RUNNER, startPlugin, startRealm } from './helpers.ts';

const NAME = `client-secret/${RUNNER}`;

describe('credentials-keycloak faults: transient, coded, without values', { timeout: budget(120_000) }, () => {
  it('token endpoint 503, 500, connection reset and timeout are WM_ERR_NETWORK or WM_ERR_TIMEOUT, transient; the next read recovers', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    // The client secret comes from a file: every request in this test goes to the token endpoint.
    const s = await startPlugin(kc, { requestTimeoutMs: 500, clients: [{ clientId: RUNNER, secret: { file: '../runner-secret' } }] });
    t.after(() => s.close());
    await s.secretFile('runner-secret', kc.client(RUNNER).secret);
    const p = s.harness.proxy;
    const name = `token/${RUNNER}`;
    const cases = [
      { fault: { kind: 'status', status: 503 }, code: 'WM_ERR_NETWORK' },
      { fault: { kind: 'status', status: 500 }, code: 'WM_ERR_NETWORK' },
      { fault: { kind: 'reset' }, code: 'WM_ERR_NETWORK' },
      { fault: { kind: 'timeout' }, code: 'WM_ERR_TIMEOUT' },
    ] as const;
    const errors = [];
    for (const c of cases) {
      kc.fault({ match: 'token', count: 1, ...c.fault });
      const e = await expectCode(p.getSecret({ name }), c.code, `token endpoint ${c.fault.kind}`);
      assert.equal(e.transient, true, `${c.code} is transient`);
      errors.push(e);
      kc.clearFaults();
    }
    const ok = await p.getSecret({ name });
    assert.equal(typeof ok.value, 'string', 'the next read recovers');
    const canaries = realmSecrets(kc, [RUNNER, ROTATOR], [ok.value as string]);
    for (const e of errors) assertNoCanary(errorText(e), canaries, `the ${e.code} error`);
    assertNoCanary(JSON.stringify(s.harness.logs), canaries, 'the plugin logs');
  });

  it('admin API 500, reset and timeout are transient coded errors, and change nothing', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const s = await startPlugin(kc, { requestTimeoutMs: 500 });
    t.after(() => s.close());
    const p = s.harness.proxy;
    await p.getSecret({ name: NAME });
    const before = kc.client(RUNNER).secret;
    kc.fault({ match: /^POST .*\/client-secret$/, kind: 'status', status: 500, count: 1 });
    const e1 = await expectCode(p.createPendingVersion({ name: NAME }), 'WM_ERR_NETWORK', 'regenerate answered 500');
    assert.equal(kc.client(RUNNER).secret, before);
    kc.fault({ match: 'admin', kind: 'reset', count: 1 });
    const e2 = await expectCode(p.getSecret({ name: NAME }), 'WM_ERR_NETWORK', 'admin connection reset');
    kc.fault({ match: 'admin', kind: 'timeout', count: 1 });
    const e3 = await expectCode(p.listVersions({ name: NAME }), 'WM_ERR_TIMEOUT', 'admin timeout');
    for (const e of [e1, e2, e3]) assert.equal(e.transient, true, `${e.code} is transient`);
    assert.equal((await p.getSecret({ name: NAME })).value, before, 'reads recover');
    for (const e of [e1, e2, e3]) assertNoCanary(errorText(e), realmSecrets(kc, [RUNNER, ROTATOR]), `the ${e.code} error`);
  });

  it('a refresh that fails transiently serves the cached token while it is still valid, with lease 0', async (t) => {
    // 30 s tokens with a 25 s skew: the token is due for refresh after 5 s yet valid for 25 s more.
    const kc = await startRealm({ tokenTtlSeconds: 30 });
    t.after(() => kc.close());
    const s = await startPlugin(kc, { tokenSkewSeconds: 25 });
    t.after(() => s.close());
    const name = `token/${RUNNER}`;
    const first = await s.harness.proxy.getSecret({ name });
    // The skew is capped at half the lifetime (15 s): the lease is at most 15 s.
    assert.ok(first.leaseTtlMs !== undefined && first.leaseTtlMs <= 15_000 && first.leaseTtlMs > 5_000, `lease ${String(first.leaseTtlMs)}`);
    kc.fault({ match: 'token', kind: 'status', status: 503 });
    // Read until a refresh was tried (and refused): that read must still answer the cached token.
    const stale = await waitFor(async () => {
      const v = await s.harness.proxy.getSecret({ name });
      return kc.requests.some((r) => r.path.endsWith('/token') && r.status === 503) ? v : undefined;
    }, 'a refresh attempt', 30_000, 100);
    assert.equal(stale.version, first.version, 'the cached token is served');
    assert.equal(stale.leaseTtlMs, 0, 'with a lease of 0, so the caller asks again soon');
    assert.ok(s.harness.logs.some((l) => l.level === 'warn' && l.message.includes('serving the cached token')));
    kc.clearFaults();
    const fresh = await s.harness.proxy.getSecret({ name });
    assert.notEqual(fresh.version, first.version, 'once Keycloak answers, a new token');
  });

  it('an unreachable Keycloak is WM_ERR_NETWORK, transient', async (t) => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const kc = await startRealm();
    t.after(() => kc.close());
    const s = await startPlugin(kc, { baseUrl: `http://127.0.0.1:${port}` });
    t.after(() => s.close());
    const e = await expectCode(s.harness.proxy.getSecret({ name: NAME }), 'WM_ERR_NETWORK', 'a closed port');
    assert.equal(e.transient, true);
    await expectCode(s.harness.proxy.getSecret({ name: `token/${RUNNER}` }), 'WM_ERR_NETWORK', 'a token from a closed port');
  });
});
