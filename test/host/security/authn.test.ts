import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Value from 'typebox/value';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { AuthenticationSettings, OidcSettings } from '../../../host/src/security/authn/authnSettings.ts';
import { assertSafeBind, createAuthenticator, hostPrincipal, isLoopbackHost } from '../../../host/src/security/authn/createAuthenticator.ts';
import { keycloakPrincipal } from '../../../host/src/security/authn/keycloakPrincipal.ts';
import { adminTokenPath, LocalAdminAuthenticator } from '../../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { OidcAuthenticator } from '../../../host/src/security/authn/OidcAuthenticator.ts';
import { startTestIdentityProvider, type TestIdentityProvider } from '../../helpers/testIdentityProvider.ts';
import { budget } from '../../helpers/waitFor.ts';

/** OIDC settings with defaults applied, as the config loader gives them. */
function oidcSettings(overrides: Partial<OidcSettings>): OidcSettings {
  // The test issuer runs in this process and answers at once; its discovery deadline is generous so that a loaded
  // machine cannot turn a slow answer into HOST_ERR_AUTH_PROVIDER_UNAVAILABLE.
  return Value.Default(OidcSettings, { allowInsecureHttp: true, discoveryTimeoutMs: budget(30_000), ...overrides }) as OidcSettings;
}

/** Asserts a WM_ERR_AUTHENTICATION with this reason, and that the message does not echo the token. */
async function rejectsWith(promise: Promise<unknown>, reason: string, token?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof WorkerManagerError, String(err));
    assert.equal(err.code, 'WM_ERR_AUTHENTICATION', err.message);
    assert.equal(err.details?.['reason'], reason, err.message);
    if (token !== undefined) assert.ok(!JSON.stringify(err.toJSON()).includes(token), 'the error never carries the token');
    return true;
  });
}

const freePort = (): Promise<number> => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as net.AddressInfo;
    s.close(() => resolve(port));
  });
});

describe('OidcAuthenticator against a Keycloak-shaped identity provider', () => {
  let idp: TestIdentityProvider;
  let authn: OidcAuthenticator;
  const now = (): number => Math.floor(Date.now() / 1000);

  before(async () => {
    idp = await startTestIdentityProvider();
    authn = new OidcAuthenticator(oidcSettings({ issuer: idp.issuer, audience: idp.audience, requiredScopes: ['wm:api'], jwksCooldownMs: 0 }));
    await authn.start();
  });
  after(async () => {
    await authn.stop();
    await idp.close();
  });

  it('maps a real client-credentials token to a service principal with Keycloak roles, scopes and tenant', async () => {
    const principal = await authn.authenticate(`Bearer ${await idp.token('ci-operator')}`);
    assert.deepEqual(principal, {
      kind: 'service', id: 'ci-operator', clientId: 'ci-operator', tenant: 'team-a',
      roles: ['ci-operator', 'worker-manager:operator'], scopes: ['wm:api'], source: 'oidc',
    });
  });

  it('refuses a missing or empty header with reason missing', async () => {
    await rejectsWith(authn.authenticate(undefined), 'missing');
    await rejectsWith(authn.authenticate('   '), 'missing');
  });

  it('refuses what is not a bearer JWT with reason malformed', async () => {
    await rejectsWith(authn.authenticate('Basic dXNlcjpwYXNz'), 'malformed');
    await rejectsWith(authn.authenticate('Bearer not-a-jwt'), 'malformed');
    // The protected header is not JSON.
    await rejectsWith(authn.authenticate('Bearer bm90IGpzb24.bm90IGpzb24.c2ln'), 'malformed');
    // alg none: an unsigned token is no token.
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ iss: idp.issuer, aud: idp.audience, sub: 'x', exp: now() + 60, scope: 'wm:api' })).toString('base64url');
    await assert.rejects(authn.authenticate(`Bearer ${header}.${body}.c2ln`), (err: WorkerManagerError) => err.code === 'WM_ERR_AUTHENTICATION');
  });

  it('refuses a token signed with another key (same kid, or an unknown kid) with reason signature', async () => {
    const sameKid = await idp.mint({}, { key: 'forged' });
    await rejectsWith(authn.authenticate(`Bearer ${sameKid}`), 'signature', sameKid);
    const otherKid = await idp.mint({}, { key: 'forged', kid: 'attacker-key' });
    await rejectsWith(authn.authenticate(`Bearer ${otherKid}`), 'signature', otherKid);
    // The same claims signed by the realm's key pass: only the key made the difference.
    assert.equal((await authn.authenticate(`Bearer ${await idp.mint({})}`)).id, 'ci-operator');
  });

  it('refuses expired and not-yet-valid tokens beyond the clock skew, and accepts them within it', async () => {
    await rejectsWith(authn.authenticate(`Bearer ${await idp.mint({ iat: now() - 600, exp: now() - 120 })}`), 'expired');
    await rejectsWith(authn.authenticate(`Bearer ${await idp.mint({ nbf: now() + 120 })}`), 'not_yet_valid');
    assert.equal((await authn.authenticate(`Bearer ${await idp.mint({ exp: now() - 10 })}`)).id, 'ci-operator', 'expired 10 s ago is inside the 30 s skew');
    assert.equal((await authn.authenticate(`Bearer ${await idp.mint({ nbf: now() + 10 })}`)).id, 'ci-operator');
    await rejectsWith(authn.authenticate(`Bearer ${await idp.mint({ exp: undefined })}`), 'claims');
  });

  it('refuses a real token for another audience, and one naming another issuer', async () => {
    const other = await idp.token('ci-operator', { resource: 'urn:other-api' });
    await rejectsWith(authn.authenticate(`Bearer ${other}`), 'audience', other);
    await rejectsWith(authn.authenticate(`Bearer ${await idp.mint({ iss: 'http://127.0.0.1:1/realms/evil' })}`), 'issuer');
  });

  it('refuses a real token that lacks a required scope, naming the scope', async () => {
    const reader = await idp.token('ci-reader');
    await assert.rejects(authn.authenticate(`Bearer ${reader}`), (err: WorkerManagerError) => {
      assert.equal(err.code, 'WM_ERR_AUTHENTICATION');
      assert.equal(err.details?.['reason'], 'scope');
      assert.deepEqual(err.details?.['missingScopes'], ['wm:api']);
      return true;
    });
  });

  it('fetches the keys again when a token names a kid it has not seen (key rotation)', async () => {
    await authn.authenticate(`Bearer ${await idp.token('ci-operator')}`);
    const before = idp.jwksRequests;
    await idp.rotateKeys();
    const fresh = await idp.token('ci-operator');
    assert.equal((await authn.authenticate(`Bearer ${fresh}`)).id, 'ci-operator');
    assert.equal(idp.jwksRequests, before + 1, 'one refetch for the new kid');
    await authn.authenticate(`Bearer ${await idp.token('ci-agent')}`);
    assert.equal(idp.jwksRequests, before + 1, 'then the cached keys serve');
  });

  it('does not refetch keys for unknown kids within the cooldown', async () => {
    const guarded = new OidcAuthenticator(oidcSettings({ issuer: idp.issuer, audience: idp.audience, jwksCooldownMs: 60_000 }));
    await guarded.authenticate(`Bearer ${await idp.token('ci-operator')}`);
    const before = idp.jwksRequests;
    for (let i = 0; i < 5; i += 1) await rejectsWith(guarded.authenticate(`Bearer ${await idp.mint({}, { key: 'forged', kid: `random-${i}` })}`), 'signature');
    assert.equal(idp.jwksRequests, before, 'forged kids cost no JWKS request');
  });

  it('reads the tenant from a configured (nested) claim', async () => {
    const custom = new OidcAuthenticator(oidcSettings({ issuer: idp.issuer, audience: idp.audience, tenantClaim: 'attributes.org' }));
    const principal = await custom.authenticate(`Bearer ${await idp.mint({ attributes: { org: 'acme' } })}`);
    assert.equal(principal.tenant, 'acme');
    assert.equal((await custom.authenticate(`Bearer ${await idp.mint({})}`)).tenant, undefined);
  });

  it('answers HOST_ERR_AUTH_PROVIDER_UNAVAILABLE (503) while the issuer is unreachable, and recovers once it is back', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}/realms/wm`;
    const down = new OidcAuthenticator(oidcSettings({ issuer, audience: 'worker-manager', discoveryTimeoutMs: 1_000 }));
    await down.start(); // does not throw: the host may start before its identity provider
    await assert.rejects(down.authenticate(`Bearer ${await idp.mint({})}`), (err: WorkerManagerError) => err.code === 'HOST_ERR_AUTH_PROVIDER_UNAVAILABLE' && err.category === 'TransientInfrastructure');
    await rejectsWith(down.authenticate(undefined), 'missing');
  });

  it('refuses an http issuer unless allowInsecureHttp, and oidc mode without its block', () => {
    assert.throws(() => new OidcAuthenticator(oidcSettings({ issuer: idp.issuer, audience: 'x', allowInsecureHttp: false })), (err: WorkerManagerError) => err.code === 'HOST_ERR_AUTH_CONFIG_INVALID');
    const settings = Value.Default(AuthenticationSettings, { mode: 'oidc' }) as AuthenticationSettings;
    assert.throws(() => createAuthenticator(settings, { stateDir: '/tmp' }), (err: WorkerManagerError) => err.code === 'HOST_ERR_AUTH_CONFIG_INVALID');
  });
});

describe('keycloakPrincipal', () => {
  it('maps a user token: kind user, realm and client roles, no duplicates', () => {
    const p = keycloakPrincipal({
      sub: 'u-1', azp: 'wm-cli', preferred_username: 'alice', scope: 'openid wm:api', tenant: 't1',
      realm_access: { roles: ['security_admin', 'security_admin'] }, resource_access: { 'worker-manager': { roles: ['admin'] }, account: { roles: ['view'] } },
    }, 'tenant');
    assert.deepEqual(p, { kind: 'user', id: 'u-1', clientId: 'wm-cli', tenant: 't1', roles: ['security_admin', 'worker-manager:admin', 'account:view'], scopes: ['openid', 'wm:api'], source: 'oidc' });
  });
  it('refuses a token without sub', () => {
    assert.throws(() => keycloakPrincipal({ azp: 'x' }, 'tenant'), (err: WorkerManagerError) => err.details?.['reason'] === 'claims');
  });
});

describe('LocalAdminAuthenticator (embedded default)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-authn-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a random token readable only by the user, accepts it as local-admin and nothing else', async () => {
    const stateDir = path.join(dir, 'state');
    const authn = new LocalAdminAuthenticator({ stateDir });
    await authn.start();
    const file = adminTokenPath(stateDir);
    assert.equal(authn.file, file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const token = (await readFile(file, 'utf8')).trim();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const principal = await authn.authenticate(`Bearer ${token}`);
    assert.equal(principal.id, 'local-admin');
    assert.equal(principal.source, 'local-admin');
    await rejectsWith(authn.authenticate(`Bearer ${token}x`), 'invalid_token', token);
    await rejectsWith(authn.authenticate(undefined), 'missing');
    await rejectsWith(authn.authenticate(`Token ${token}`), 'malformed');

    // A restart makes a new token; the old one stops working.
    // A leftover token file with loose permissions is replaced, not reused.
    await authn.stop();
    await writeFile(file, 'old', { mode: 0o644 });
    const again = new LocalAdminAuthenticator({ stateDir });
    await again.start();
    const second = (await readFile(file, 'utf8')).trim();
    assert.notEqual(second, token);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await rejectsWith(again.authenticate(`Bearer ${token}`), 'invalid_token');
    assert.equal((await again.authenticate(`Bearer ${second}`)).id, 'local-admin');
  });
});

describe('bind safety and the host identity', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '128.0.0.1', '::2']) assert.equal(isLoopbackHost(h), false, h);
  });
  it('refuses a non-loopback API with local authentication, allows it with oidc', () => {
    assert.throws(() => assertSafeBind('0.0.0.0', { mode: 'local' }), (err: WorkerManagerError) => err.code === 'HOST_ERR_AUTH_INSECURE_BIND' && err.details?.['host'] === '0.0.0.0');
    assert.doesNotThrow(() => assertSafeBind('127.0.0.1', { mode: 'local' }));
    assert.doesNotThrow(() => assertSafeBind('0.0.0.0', { mode: 'oidc' }));
  });
  it('builds the host service principal from settings', () => {
    assert.deepEqual(hostPrincipal({ commands: true, roles: ['wm-service'] }, 'h1'), { kind: 'service', id: 'host:h1', roles: ['wm-service'], scopes: [], source: 'host' });
    assert.equal(hostPrincipal({ commands: true, roles: [], id: 'svc', tenant: 't' }, 'h1').tenant, 't');
  });
});
