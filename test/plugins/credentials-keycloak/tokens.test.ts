import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { assertNoCanary, claims, DEPLOY, errorText, expectCode, realmSecrets, RUNNER, startPlugin, startRealm } from './helpers.ts';

describe('credentials-keycloak token/<clientId>', { timeout: budget(120_000) }, () => {
  it('getSecret answers a service-account token of that client from a real client credentials grant, with a lease', async (t) => {
    const kc = await startRealm({ tokenTtlSeconds: 300 });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());

    const got = await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
    assert.equal(got.name, `token/${RUNNER}`);
    assert.equal(typeof got.value, 'string');
    const token = got.value as string;
    assert.equal(claims(token)['azp'], RUNNER, 'the token is for the service account of ci-runner');
    assert.equal(claims(token)['iss'], kc.issuer);
    assert.match(got.version, /^t-[0-9a-f]{16}$/);
    // 300 s lifetime, 2 s skew: the lease ends 2 s before the token does.
    assert.ok(got.leaseTtlMs !== undefined && got.leaseTtlMs > 250_000 && got.leaseTtlMs <= 298_000, `leaseTtlMs ${String(got.leaseTtlMs)}`);
    assert.equal(kc.grants(RUNNER), 1);

    const versions = await s.harness.proxy.listVersions({ name: `token/${RUNNER}` });
    assert.equal(versions.length, 1);
    assert.deepEqual([versions[0]?.version, versions[0]?.status, versions[0]?.stages], [got.version, 'active', ['current']]);
    const exp = claims(token)['exp'] as number;
    assert.ok(Math.abs(Date.parse(versions[0]?.expiresAt ?? '') - exp * 1_000) < 5_000, 'expiresAt is the token expiry');
    assert.deepEqual(await s.harness.proxy.describe({ name: `token/${RUNNER}` }), { name: `token/${RUNNER}`, currentVersion: got.version, versions: 1 });
    assert.deepEqual((await s.harness.proxy.getSecret({ name: `token/${RUNNER}`, version: got.version })).value, token, 'by version id');
  });

  it('one grant serves many reads, concurrent ones included, per client', async (t) => {
    const kc = await startRealm({ tokenTtlSeconds: 300 });
    t.after(() => kc.close());
    const s = await startPlugin(kc);
    t.after(() => s.close());

    const concurrent = await Promise.all(Array.from({ length: 20 }, () => s.harness.proxy.getSecret({ name: `token/${RUNNER}` })));
    for (let i = 0; i < 20; i += 1) await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
    assert.equal(new Set(concurrent.map((v) => v.value)).size, 1, 'every read answers the same token');
    assert.equal(kc.grants(RUNNER), 1, 'forty reads, one grant');
    await s.harness.proxy.getSecret({ name: `token/${DEPLOY}` });
    assert.equal(kc.grants(DEPLOY), 1, 'another client has its own token');
    assert.equal(kc.grants(RUNNER), 1);
  });

  it('replaces the token once it is within the skew of its expiry, keeps the old one as previous until it expires, then answers WM_ERR_SECRET_EXPIRED for it', async (t) => {
    // 6 s tokens, 2 s skew: a new grant from 4 s on, before the old token expires at 6 s.
    const kc = await startRealm({ tokenTtlSeconds: 6 });
    t.after(() => kc.close());
    const s = await startPlugin(kc, { tokenSkewSeconds: 2 });
    t.after(() => s.close());
    const name = `token/${RUNNER}`;

    const first = await s.harness.proxy.getSecret({ name });
    assert.ok(first.leaseTtlMs !== undefined && first.leaseTtlMs <= 4_000, `lease ends at the skew: ${String(first.leaseTtlMs)}`);
    const firstExpiry = (claims(first.value as string)['exp'] as number) * 1_000;
    const second = await waitFor(async () => {
      const v = await s.harness.proxy.getSecret({ name });
      return v.version !== first.version ? { v, at: Date.now() } : undefined;
    }, 'a refreshed token', 30_000);
    assert.equal(kc.grants(RUNNER), 2, 'reads before the skew window made no grant');
    assert.ok(second.at >= firstExpiry - 2_000 - 1_000, 'not refreshed long before the skew window (exp has 1 s granularity)');
    assert.notEqual(second.v.value, first.value);

    const versions = await s.harness.proxy.listVersions({ name });
    const previous = versions.find((v) => v.version === first.version);
    if (previous !== undefined) {
      // Still inside its lifetime: listed and readable as previous.
      assert.deepEqual([previous.status, previous.stages], ['deprecated', ['previous']]);
    }
    await waitFor(() => Date.now() > firstExpiry + 1_000, 'the first token to expire', 30_000);
    const expired = await expectCode(s.harness.proxy.getSecret({ name, version: first.version }), 'WM_ERR_SECRET_EXPIRED', 'the expired token by version');
    assertNoCanary(errorText(expired), [first.value as string, second.v.value as string], 'the WM_ERR_SECRET_EXPIRED error');
    await expectCode(s.harness.proxy.getSecret({ name, version: 'pending' }), 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'a token has no pending stage');
  });

  it('a refused grant: a wrong secret is WM_ERR_AUTHENTICATION (invalid_client), a client without service account WM_ERR_PERMISSION_DENIED', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const wrong = 'wrong-secret-canary-0123456789abcdef';
    const s = await startPlugin(kc, {
      clients: [
        { clientId: RUNNER, secret: { file: 'runner-secret' } },
        { clientId: 'ci-disabled', secret: { env: 'WM_TEST_KEYCLOAK_DISABLED_SECRET' } },
        { clientId: 'ci-gone', secret: { file: 'gone-secret' } },
      ],
    });
    t.after(() => s.close());
    process.env['WM_TEST_KEYCLOAK_DISABLED_SECRET'] = kc.client('ci-disabled').secret;
    t.after(() => {
      delete process.env['WM_TEST_KEYCLOAK_DISABLED_SECRET'];
    });
    // Relative files are read from the state directory.
    await s.secretFile('state/runner-secret', wrong);
    await s.secretFile('state/gone-secret', 'whatever-secret-0123456789');

    const refused = await expectCode(s.harness.proxy.getSecret({ name: `token/${RUNNER}` }), 'WM_ERR_AUTHENTICATION', 'a wrong client secret');
    assert.equal((refused.details as { oauthError?: string }).oauthError, 'invalid_client');
    assert.equal(refused.transient, false);
    await expectCode(s.harness.proxy.getSecret({ name: 'token/ci-gone' }), 'WM_ERR_AUTHENTICATION', 'a client the realm does not have');
    const denied = await expectCode(s.harness.proxy.getSecret({ name: 'token/ci-disabled' }), 'WM_ERR_PERMISSION_DENIED', 'service accounts off');
    assert.equal((denied.details as { oauthError?: string }).oauthError, 'unauthorized_client');

    // The file is read at each grant: fixing it fixes the next read, without a restart.
    await s.secretFile('state/runner-secret', kc.client(RUNNER).secret);
    const fixed = await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
    assert.equal(claims(fixed.value as string)['azp'], RUNNER);
    const canaries = realmSecrets(kc, [RUNNER, 'ci-disabled'], [wrong, fixed.value as string]);
    for (const e of [refused, denied]) assertNoCanary(errorText(e), canaries, `the ${e.code} error`);
    assertNoCanary(JSON.stringify(s.harness.logs), canaries, 'the plugin logs');
  });

  it('names it does not serve are WM_ERR_SECRET_NOT_FOUND, and rotation operations on a token WM_ERR_COMPATIBILITY', async (t) => {
    const kc = await startRealm();
    t.after(() => kc.close());
    const s = await startPlugin(kc, { clients: [{ clientId: RUNNER }, { clientId: 'team-*' }] });
    t.after(() => s.close());
    const p = s.harness.proxy;
    await expectCode(p.getSecret({ name: 'token/someone-else' }), 'WM_ERR_SECRET_NOT_FOUND', 'a client not in the config');
    await expectCode(p.getSecret({ name: 'password/ci-runner' }), 'WM_ERR_SECRET_NOT_FOUND', 'an unknown kind');
    await expectCode(p.getSecret({ name: `client-secret/${RUNNER}` }), 'WM_ERR_SECRET_NOT_FOUND', 'client-secret without rotate: true');
    await expectCode(p.getSecret({ name: 'token/team-missing' }), 'WM_ERR_SECRET_NOT_FOUND', 'a prefix-served client the realm does not have');
    kc.addClient({ clientId: 'team-a' });
    assert.equal(claims((await p.getSecret({ name: 'token/team-a' })).value as string)['azp'], 'team-a', 'a prefix serves a client created later');
    await expectCode(p.createPendingVersion({ name: `token/${RUNNER}` }), 'WM_ERR_COMPATIBILITY', 'createPendingVersion of a token');
    await expectCode(p.revokeVersion({ name: `token/${RUNNER}`, version: 'previous' }), 'WM_ERR_COMPATIBILITY', 'revokeVersion of a token');
    assert.equal(kc.grants(RUNNER), 0, 'refused operations made no grant');
  });
});
