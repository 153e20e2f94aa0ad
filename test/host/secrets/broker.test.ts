import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SecretMount } from '@worker-manager/plugin-sdk';
import Value from 'typebox/value';
import { SecretBroker } from '../../../host/src/secrets/SecretBroker.ts';
import { SecretsSettings } from '../../../host/src/secrets/secretsSettings.ts';
import type { TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { codeOf, secretValue, startBrokerHost } from './brokerFixtures.ts';

// Seconds: a read right after a write must still fall inside the TTL on a loaded machine.
const TTL_MS = budget(5_000);

describe('SecretBroker against a real credentials-simple instance', () => {
  let h: TestHost;
  const v1 = secretValue('v1');
  const v2 = secretValue('v2');
  const v3 = secretValue('v3');

  before(async () => {
    h = await startBrokerHost({ cacheTtlMs: TTL_MS });
    assert.equal(h.report.find((r) => r.instance === 'vault')?.state, 'running', JSON.stringify(h.report));
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'app/token', value: v1 });
    await vault.putSecret({ name: 'app/token', value: v2 });
    await vault.createPendingVersion({ name: 'app/token', value: v3 });
    await vault.putSecret({ name: 'app/db', value: { user: 'app', password: v1, host: 'db.local' } });
    await vault.putSecret({ name: 'team-a/db', value: v1 });
    await vault.putSecret({ name: 'team-b/deep/db', value: v2 });
  });
  after(() => h.stop());

  /** A second broker over the same registry, with its own state dir and cache. */
  const brokerOn = (stateDir: string, cacheTtlMs: number): SecretBroker =>
    new SecretBroker({
      registry: h.host.registry, settings: Value.Default(SecretsSettings, { cacheTtlMs }) as SecretsSettings,
      stateDir, logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, hostId: 'broker',
    });

  const resolveOne = async (ref: Parameters<SecretBroker['resolve']>[0]['refs'][number], tenant?: string): Promise<SecretMount[]> =>
    h.host.secrets.resolve({ workerId: 'w-test', refs: [ref], ...(tenant === undefined ? {} : { tenant }) });

  it('selects a version by stage or by id', async () => {
    const at = async (version?: string): Promise<{ version: string; value: string }> => {
      const [m] = await resolveOne({ name: 'app/token', mount: 'env', envName: 'TOKEN', ...(version === undefined ? {} : { version }) });
      assert.ok(m !== undefined);
      return { version: m.version, value: m.value };
    };
    assert.deepEqual(await at(), { version: '2', value: v2 });
    assert.deepEqual(await at('current'), { version: '2', value: v2 });
    assert.deepEqual(await at('previous'), { version: '1', value: v1 });
    assert.deepEqual(await at('pending'), { version: '3', value: v3 });
    assert.deepEqual(await at('1'), { version: '1', value: v1 });
  });

  it('turns refs into mount instructions: env per key, file as JSON or the string, keys selection', async () => {
    assert.deepEqual(await resolveOne({ name: 'app/token', mount: 'env' }), [{ strategy: 'env', name: 'app/token', version: '2', envName: 'APP_TOKEN', value: v2 }]);
    assert.deepEqual(await resolveOne({ name: 'app/token', mount: 'file', path: 'tok' }), [{ strategy: 'file', name: 'app/token', version: '2', path: 'tok', value: v2 }]);
    assert.deepEqual(await resolveOne({ name: 'app/db', mount: 'env', envName: 'DB', keys: ['user', 'password'] }), [
      { strategy: 'env', name: 'app/db', version: '1', envName: 'DB_PASSWORD', value: v1 },
      { strategy: 'env', name: 'app/db', version: '1', envName: 'DB_USER', value: 'app' },
    ]);
    assert.deepEqual(
      (await resolveOne({ name: 'app/db', mount: 'env' })).map((m) => (m.strategy === 'env' ? m.envName : m.path)),
      ['HOST', 'PASSWORD', 'USER'],
    );
    const [file] = await resolveOne({ name: 'app/db', mount: 'volume', keys: ['password'] });
    assert.equal(file?.strategy, 'volume');
    assert.deepEqual(JSON.parse(file?.value ?? ''), { password: v1 });
    assert.equal(file?.strategy === 'volume' ? file.path : undefined, 'app/db');
  });

  it('gives coded errors for an unknown secret or version, bad keys and clashing targets', async () => {
    assert.equal(await codeOf(resolveOne({ name: 'app/missing', mount: 'env' })), 'WM_ERR_SECRET_NOT_FOUND');
    assert.equal(await codeOf(resolveOne({ name: 'app/token', mount: 'env', version: '99' })), 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal(await codeOf(resolveOne({ name: 'app/token', mount: 'env', keys: ['user'] })), 'WM_ERR_SECRET_INVALID_FORMAT');
    assert.equal(await codeOf(resolveOne({ name: 'app/db', mount: 'env', keys: ['nope'] })), 'WM_ERR_SECRET_INVALID_FORMAT');
    const clash = h.host.secrets.resolve({ workerId: 'w-test', refs: [{ name: 'app/token', mount: 'env', envName: 'X' }, { name: 'team-a/db', mount: 'env', envName: 'X' }], tenant: 'default' });
    assert.equal(await codeOf(clash), 'WM_ERR_AUTHORIZATION', 'team-a/db is not tenant default\'s');
    const sameVar = h.host.secrets.resolve({ workerId: 'w-test', refs: [{ name: 'app/token', mount: 'env', envName: 'X_USER' }, { name: 'app/db', mount: 'env', envName: 'X', keys: ['user'] }] });
    assert.equal(await codeOf(sameVar), 'WM_ERR_VALIDATION');
    assert.equal(await codeOf(h.host.secrets.resolve({ workerId: 'w-test', refs: [{ name: 'app/token', mount: 'file', path: 'same' }, { name: 'app/db', mount: 'file', path: '/same' }] })), 'WM_ERR_VALIDATION');
    assert.equal(await codeOf(resolveOne({ name: 'app/token', mount: 'env', credentials: 'local' })), 'HOST_ERR_PLUGIN_KIND_MISMATCH');
    assert.equal(await codeOf(resolveOne({ name: 'app/token', mount: 'env', credentials: 'nowhere' })), 'HOST_ERR_INSTANCE_NOT_FOUND');
  });

  it('decides tenants from the rules and denies before fetching anything', async () => {
    const b = h.host.secrets;
    assert.equal(b.tenantOf('vault', 'team-a/db'), 'team-a');
    assert.equal(b.tenantOf('vault', 'team-a/x/db'), 'default', '* does not cross /');
    assert.equal(b.tenantOf('vault', 'team-b/deep/db'), 'team-b', '** crosses /');
    assert.equal(b.tenantOf('vault', 'app/token'), 'default');
    assert.equal(b.credentialsFor({}), 'vault');

    assert.deepEqual((await resolveOne({ name: 'team-a/db', mount: 'env', envName: 'X' }, 'team-a')).map((m) => m.version), ['1']);
    assert.equal(await codeOf(resolveOne({ name: 'team-a/db', mount: 'env' }, 'team-b')), 'WM_ERR_AUTHORIZATION');
    assert.equal(await codeOf(resolveOne({ name: 'team-a/db', mount: 'env' })), 'WM_ERR_AUTHORIZATION', 'no tenant acts as tenant default');
    assert.equal(await codeOf(resolveOne({ name: 'app/token', mount: 'env' }, 'team-a')), 'WM_ERR_AUTHORIZATION');

    // The first ref names a secret that does not exist and the second one is denied: a fetch before the checks would
    // fail with WM_ERR_SECRET_NOT_FOUND; the checks come first, so the answer is the denial.
    const denied = h.host.secrets.resolve({ workerId: 'w-deny', tenant: 'team-a', refs: [{ name: 'team-a/absent', mount: 'env' }, { name: 'team-b/deep/db', mount: 'env' }] });
    let error: { code?: string; message?: string; details?: unknown } | undefined;
    await denied.catch((e: unknown) => {
      error = e as typeof error;
    });
    assert.equal(error?.code, 'WM_ERR_AUTHORIZATION');
    assert.match(error?.message ?? '', /tenant 'team-a' may not read secret 'team-b\/deep\/db'/);
    assert.ok(!JSON.stringify(error).includes(v2));
    const event = h.events.find((e) => e.busSubject === 'ci.security.auth.denied' && e.subject === 'w-deny');
    assert.ok(event !== undefined, 'a denial is published');
    assert.deepEqual((event.data as { action: string; resource: string }).resource, 'Secret::team-b/deep/db');
  });

  it('serves a changed value only once the cache TTL has passed, and at once after invalidate', async () => {
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'app/ttl', value: v1 });
    const read = async (): Promise<string | undefined> => (await resolveOne({ name: 'app/ttl', mount: 'env' }))[0]?.value;
    assert.equal(await read(), v1);
    const cachedAt = Date.now();
    await vault.putSecret({ name: 'app/ttl', value: v2 });
    assert.equal(await read(), v1, 'cached within the TTL');
    const seen = await waitFor(async () => {
      const value = await read();
      return value === v1 ? undefined : value;
    }, 'the cached value to expire', TTL_MS + 20_000);
    const elapsed = Date.now() - cachedAt;
    assert.equal(seen, v2);
    // Small slack: the entry's clock starts when the fetch settles, a moment before the first read returned.
    assert.ok(elapsed >= TTL_MS - 10, `the new value appeared ${elapsed} ms after it was cached, before the TTL`);

    await vault.putSecret({ name: 'app/ttl', value: v3 });
    assert.equal(await read(), v2, 'still cached');
    h.host.secrets.invalidate('vault', 'app/ttl');
    assert.equal(await read(), v3);
  });

  it('with cacheTtlMs 0 fetches every time', async () => {
    const uncached = brokerOn(path.join(h.dir, 'uncached'), 0);
    await uncached.start();
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'app/nocache', value: v1 });
    const read = async (): Promise<string | undefined> => (await uncached.resolve({ workerId: 'w', refs: [{ name: 'app/nocache', mount: 'env' }] }))[0]?.value;
    assert.equal(await read(), v1);
    await vault.putSecret({ name: 'app/nocache', value: v2 });
    assert.equal(await read(), v2);
  });

  it('persists the consumer table atomically, without values, and reloads it', async () => {
    const b = h.host.secrets;
    await b.recordConsumers('w-c1', 'local', 'team-a', [{ name: 'team-a/db', mount: 'file', onRotation: 'signal', signal: 'SIGHUP' }]);
    await b.recordConsumers('w-c2', 'local', undefined, [{ name: 'app/token', mount: 'env' }, { name: 'app/db', mount: 'file', credentials: 'vault' }]);
    assert.deepEqual(b.consumersOf('vault', 'team-a/db'), [
      { workerId: 'w-c1', instance: 'local', tenant: 'team-a', ref: { name: 'team-a/db', mount: 'file', onRotation: 'signal', signal: 'SIGHUP', credentials: 'vault' } },
    ]);
    assert.deepEqual(b.consumersOf('vault', 'app/token').map((c) => [c.workerId, c.tenant]), [['w-c2', 'default']]);
    const file = path.join(h.dir, 'state', 'secrets', 'consumers.json');
    const text = await readFile(file, 'utf8');
    for (const v of [v1, v2, v3]) assert.ok(!text.includes(v));

    const reloaded = brokerOn(path.join(h.dir, 'state'), 0);
    await reloaded.start();
    assert.deepEqual(reloaded.consumersOf('vault', 'app/db').map((c) => c.workerId), ['w-c2']);

    await b.forgetConsumers('w-c2');
    assert.deepEqual(b.consumersOf('vault', 'app/db'), []);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).consumers.map((c: { workerId: string }) => c.workerId), ['w-c1']);
    await b.forgetConsumers('w-c1');
  });

  it('checks secrets.defaultCredentials at start and uses it for refs that name no instance', async () => {
    const named = new SecretBroker({
      registry: h.host.registry, settings: Value.Default(SecretsSettings, { defaultCredentials: 'vault' }) as SecretsSettings,
      stateDir: path.join(h.dir, 'named'), logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, hostId: 'broker',
    });
    await named.start();
    assert.equal(named.credentialsFor({}), 'vault');
    assert.equal(named.credentialsFor({ credentials: 'other' }), 'other');
    const wrong = new SecretBroker({
      registry: h.host.registry, settings: Value.Default(SecretsSettings, { defaultCredentials: 'local' }) as SecretsSettings,
      stateDir: path.join(h.dir, 'wrong'), logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, hostId: 'broker',
    });
    assert.equal(await codeOf(wrong.start()), 'HOST_ERR_CONFIG_INVALID', 'local is a provider instance, not a credentials one');
  });

  it('refuses to start on a corrupt consumer table', async () => {
    const dir = path.join(h.dir, 'corrupt');
    const broken = brokerOn(dir, 0);
    await mkdir(path.join(dir, 'secrets'), { recursive: true });
    await writeFile(path.join(dir, 'secrets', 'consumers.json'), '{"format":1,"consumers":[{"workerId":1}]}');
    assert.equal(await codeOf(broken.start()), 'HOST_ERR_SECRETS_STATE_CORRUPT');
  });
});
