import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { canary, grantTestEnv, harness, rejection, sdk, startDouble } from './helpers.ts';

grantTestEnv();

describe('credentials-aws-secrets-manager operations (real SDK against the Secrets Manager double)', () => {
  it('putSecret creates the secret with an AWSCURRENT version and reads it back by stage and by VersionId', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const v1 = await h.proxy.putSecret({ name: 'app/db', value: 'first-value' });
    assert.equal(v1.status, 'active');
    assert.deepEqual(v1.stages, ['current']);
    assert.match(v1.version, /^[0-9a-f-]{36}$/);
    assert.deepEqual(d.secret('app/db')?.versions.map((v) => v.stages), [['AWSCURRENT']]);
    assert.deepEqual(await h.proxy.getSecret({ name: 'app/db' }), { name: 'app/db', version: v1.version, value: 'first-value' });
    const v2 = await h.proxy.putSecret({ name: 'app/db', value: { user: 'ci', password: 'second' } });
    assert.deepEqual((await h.proxy.getSecret({ name: 'app/db', version: 'current' })).value, { user: 'ci', password: 'second' });
    assert.equal((await h.proxy.getSecret({ name: 'app/db', version: 'previous' })).version, v1.version);
    assert.equal((await h.proxy.getSecret({ name: 'app/db', version: v1.version })).value, 'first-value');
    const versions = await h.proxy.listVersions({ name: 'app/db' });
    assert.deepEqual(
      versions.map((v) => [v.version, v.status, v.stages]),
      [
        [v1.version, 'deprecated', ['previous']],
        [v2.version, 'active', ['current']],
      ],
    );
    assert.ok(versions.every((v) => !('value' in v)));
    assert.deepEqual(await h.proxy.describe({ name: 'app/db' }), { name: 'app/db', currentVersion: v2.version, versions: 2 });
    // The map is stored as the JSON the AWS console writes.
    assert.deepEqual(JSON.parse(d.secret('app/db')?.versions[1]?.secretString ?? ''), { user: 'ci', password: 'second' });
  });

  it('unknown names, versions and stages get WM_ERR_SECRET_NOT_FOUND / WM_ERR_SECRET_VERSION_NOT_FOUND', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'missing' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.listVersions({ name: 'missing' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.createPendingVersion({ name: 'missing' }))).code, 'WM_ERR_SECRET_NOT_FOUND');
    await h.proxy.putSecret({ name: 'present', value: 'v' });
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'present', version: 'pending' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'present', version: '00000000-0000-4000-8000-000000000000' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.promoteVersion({ name: 'present', version: 'previous' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
  });

  it('size and format limits are checked before AWS sees the value, without echoing it', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d, { maxValueBytes: 64 });
    const secret = canary('size');
    const big = await rejection(() => h.proxy.putSecret({ name: 'limits', value: secret.padEnd(65, 'x') }));
    assert.equal(big.code, 'WM_ERR_SECRET_SIZE_LIMIT');
    assert.equal(big.details?.['bytes'], 65);
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'limits', value: '' }))).code, 'WM_ERR_SECRET_INVALID_FORMAT');
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'limits', value: { 'bad key': secret } }))).code, 'WM_ERR_SECRET_INVALID_FORMAT');
    await h.proxy.putSecret({ name: 'limits', value: 'x'.repeat(64) });
    assert.ok(!JSON.stringify(h.logs).includes(secret));
    assert.equal(d.calls.filter((c) => c.operation === 'PutSecretValue' || c.operation === 'CreateSecret').length, 1, 'the refused values never reached AWS');
  });

  it('the default limit is AWS SecretString limit of 65536 bytes', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'big', value: 'y'.repeat(65_536) });
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'big', value: 'y'.repeat(65_537) }))).code, 'WM_ERR_SECRET_SIZE_LIMIT');
  });

  it('createPendingVersion stages AWSPENDING only; a second one revokes the abandoned first', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const v1 = await h.proxy.putSecret({ name: 'rot', value: 'one' });
    const p1 = await h.proxy.createPendingVersion({ name: 'rot', value: 'pending-one' });
    assert.equal(p1.status, 'pending');
    assert.deepEqual(p1.stages, ['pending']);
    assert.equal((await h.proxy.getSecret({ name: 'rot' })).version, v1.version, 'current is untouched');
    assert.equal((await h.proxy.getSecret({ name: 'rot', version: 'pending' })).value, 'pending-one');
    const p2 = await h.proxy.createPendingVersion({ name: 'rot' });
    const generated = await h.proxy.getSecret({ name: 'rot', version: 'pending' });
    assert.equal(generated.version, p2.version);
    assert.equal(typeof generated.value, 'string');
    assert.ok((generated.value as string).length >= 40);
    const listed = new Map((await h.proxy.listVersions({ name: 'rot' })).map((v) => [v.version, v]));
    assert.equal(listed.get(p1.version)?.status, 'revoked');
    assert.deepEqual(listed.get(p1.version)?.stages, []);
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'rot', version: p1.version }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal(d.secret('rot')?.tags[`wm:revoked:${p1.version}`] !== undefined, true, 'revocation is recorded as a tag on the secret');
  });

  it('revokeVersion: refuses the current version, strips the labels, and the value is never served again, though AWS keeps it', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const v1 = await h.proxy.putSecret({ name: 'rev', value: 'old-value' });
    const v2 = await h.proxy.putSecret({ name: 'rev', value: 'new-value' });
    const current = await rejection(() => h.proxy.revokeVersion({ name: 'rev', version: 'current' }));
    assert.equal(current.code, 'WM_ERR_CONFLICT');
    const revoked = await h.proxy.revokeVersion({ name: 'rev', version: 'previous' });
    assert.deepEqual([revoked.version, revoked.status, revoked.stages], [v1.version, 'revoked', []]);
    assert.deepEqual(await h.proxy.revokeVersion({ name: 'rev', version: v1.version }), revoked, 'idempotent');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'rev', version: v1.version }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'rev', version: 'previous' }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    assert.deepEqual(await h.proxy.testVersion({ name: 'rev', version: v1.version }), { ok: false, reason: `version ${v1.version} is revoked` });
    const promote = await rejection(() => h.proxy.promoteVersion({ name: 'rev', version: v1.version }));
    assert.equal(promote.code, 'WM_ERR_CONFLICT');
    assert.deepEqual(d.secret('rev')?.versions.map((v) => v.stages), [[], ['AWSCURRENT']]);
    // The honest limit: AWS still returns the value to anyone calling it directly.
    const direct = await sdk(t, d).send(new GetSecretValueCommand({ SecretId: 'rev', VersionId: v1.version }));
    assert.equal(direct.SecretString, 'old-value');
    assert.equal((await h.proxy.getSecret({ name: 'rev' })).version, v2.version);
  });

  it('revoking drops revoked tags of versions AWS no longer keeps', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'tags', value: 'v' });
    const c = sdk(t, d);
    const { TagResourceCommand } = await import('@aws-sdk/client-secrets-manager');
    await c.send(new TagResourceCommand({ SecretId: 'tags', Tags: [{ Key: 'wm:revoked:11111111-1111-4111-8111-111111111111', Value: 'x' }] }));
    const p = await h.proxy.createPendingVersion({ name: 'tags', value: 'p' });
    await h.proxy.revokeVersion({ name: 'tags', version: p.version });
    assert.deepEqual(Object.keys(d.secret('tags')?.tags ?? {}).filter((k) => k.startsWith('wm:revoked:')), [`wm:revoked:${p.version}`]);
  });

  // Regression (issue 16, rotation under load): one tag per revoked version hit AWS's 50 tags per secret after 48
  // revocations within AWS's 24-hour retention, and every later revocation failed, leaving old versions served.
  it('revokes far more versions than a secret has tags for: single tags are folded into packs, and none is served again', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    let current = (await h.proxy.putSecret({ name: 'many', value: 'v0' })).version;
    const revoked: string[] = [];
    for (let i = 1; i <= 120; i += 1) {
      const pending = await h.proxy.createPendingVersion({ name: 'many' });
      await h.proxy.promoteVersion({ name: 'many', version: pending.version });
      assert.equal((await h.proxy.revokeVersion({ name: 'many', version: current })).status, 'revoked', `revocation ${i}`);
      revoked.push(current);
      current = pending.version;
    }
    const tags = Object.keys(d.secret('many')?.tags ?? {});
    assert.ok(tags.length <= 30, `${tags.length} tags`);
    assert.ok(tags.some((k) => k.startsWith('wm:revoked-set:')), JSON.stringify(tags));
    const listed = new Map((await h.proxy.listVersions({ name: 'many' })).map((v) => [v.version, v.status]));
    assert.deepEqual(revoked.filter((v) => listed.get(v) !== 'revoked'), [], 'every revoked version lists as revoked');
    assert.equal(listed.get(current), 'active');
    for (const v of [revoked[0], revoked[59], revoked.at(-1)] as string[]) {
      assert.equal((await rejection(() => h.proxy.getSecret({ name: 'many', version: v }))).code, 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    }
  });

  it('namePrefix is prepended in AWS, and a name AWS cannot hold is WM_ERR_VALIDATION', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d, { namePrefix: 'wm/ci/' });
    await h.proxy.putSecret({ name: 'token', value: 'v' });
    assert.ok(d.secret('wm/ci/token'));
    assert.equal(d.secret('token'), undefined);
    assert.equal((await rejection(() => h.proxy.getSecret({ name: 'has space' }))).code, 'WM_ERR_VALIDATION');
  });

  it('tags secrets it creates with owner and tenant, and refuses secrets of another tenant with WM_ERR_PERMISSION_DENIED', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d, { tenant: 'team-a' });
    await h.proxy.putSecret({ name: 'mine', value: 'v' });
    assert.deepEqual(d.secret('mine')?.tags, { 'worker-manager/host': 'test-host', 'worker-manager/instance': 'test', 'worker-manager/tenant': 'team-a' });
    await sdk(t, d).send(new CreateSecretCommand({ Name: 'theirs', SecretString: 'v', Tags: [{ Key: 'worker-manager/tenant', Value: 'team-b' }] }));
    const denied = await rejection(() => h.proxy.getSecret({ name: 'theirs' }));
    assert.equal(denied.code, 'WM_ERR_PERMISSION_DENIED');
    assert.equal(denied.details?.['reason'], 'tenant');
    assert.equal((await rejection(() => h.proxy.putSecret({ name: 'theirs', value: 'w' }))).code, 'WM_ERR_PERMISSION_DENIED');
    assert.equal(d.secret('theirs')?.versions.length, 1);
  });

  it('reads a secret written by other tools: binary values come back base64, non-map JSON stays a string', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const c = sdk(t, d);
    await c.send(new CreateSecretCommand({ Name: 'bin', SecretBinary: Buffer.from([1, 2, 3, 250]) }));
    await c.send(new CreateSecretCommand({ Name: 'list', SecretString: '["a","b"]' }));
    assert.equal((await h.proxy.getSecret({ name: 'bin' })).value, Buffer.from([1, 2, 3, 250]).toString('base64'));
    assert.equal((await h.proxy.getSecret({ name: 'list' })).value, '["a","b"]');
  });
});
