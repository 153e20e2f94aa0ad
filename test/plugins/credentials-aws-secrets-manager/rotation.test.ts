import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { grantTestEnv, harness, rejection, sdk, startDouble } from './helpers.ts';

grantTestEnv();

/** The four steps of AWS's rotation Lambda template, run with the SDK exactly as the template runs them. */
async function lambdaRotation(c: SecretsManagerClient, secretId: string, token: string, newValue: string): Promise<void> {
  // createSecret
  await c.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }));
  try {
    await c.send(new GetSecretValueCommand({ SecretId: secretId, VersionId: token, VersionStage: 'AWSPENDING' }));
  } catch (error) {
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    await c.send(new PutSecretValueCommand({ SecretId: secretId, ClientRequestToken: token, SecretString: newValue, VersionStages: ['AWSPENDING'] }));
  }
  // setSecret and testSecret touch the target system only. finishSecret:
  const d = await c.send(new DescribeSecretCommand({ SecretId: secretId }));
  const current = Object.entries(d.VersionIdsToStages ?? {}).find(([, s]) => s.includes('AWSCURRENT'))?.[0];
  if (current === token) return;
  await c.send(new UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT', MoveToVersionId: token, RemoveFromVersionId: current }));
}

/** Labels by version age: index 0 the oldest. AWSPENDING left on the current version is what AWS treats as finished. */
function labelsByAge(versions: ReadonlyArray<{ stages: string[] }>): string[][] {
  return versions.map((v) => v.stages.filter((s) => s !== 'AWSPENDING' || !v.stages.includes('AWSCURRENT')).sort());
}

describe('rotation through credentials-aws-secrets-manager', () => {
  it('createPendingVersion, testVersion, promoteVersion leave the staging labels as a rotation Lambda leaves them', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const c = sdk(t, d);
    // Two secrets, three rotations each: one by the plugin, one by the Lambda template's calls.
    const first = await h.proxy.putSecret({ name: 'by-plugin', value: 'v0' });
    await c.send(new CreateSecretCommand({ Name: 'by-lambda', SecretString: 'v0', ClientRequestToken: first.version.replace(/.$/, 'f') }));
    for (let i = 1; i <= 3; i += 1) {
      const pending = await h.proxy.createPendingVersion({ name: 'by-plugin', value: `v${i}`, requestToken: `rotation-${i}` });
      assert.deepEqual(await h.proxy.testVersion({ name: 'by-plugin', version: pending.version }), { ok: true });
      const promoted = await h.proxy.promoteVersion({ name: 'by-plugin', version: pending.version });
      assert.deepEqual([promoted.status, promoted.stages], ['active', ['current']]);
      await lambdaRotation(c, 'by-lambda', crypto.randomUUID(), `v${i}`);
    }
    const plugin = d.secret('by-plugin')?.versions ?? [];
    const lambda = d.secret('by-lambda')?.versions ?? [];
    assert.deepEqual(labelsByAge(plugin), labelsByAge(lambda));
    assert.deepEqual(labelsByAge(plugin), [[], [], ['AWSPREVIOUS'], ['AWSCURRENT']]);
    // Nothing holds AWSPENDING apart from the current version, so RotateSecret would not see a rotation in progress.
    assert.ok(plugin.every((v) => !v.stages.includes('AWSPENDING')));
    const listed = await h.proxy.listVersions({ name: 'by-plugin' });
    assert.deepEqual(
      listed.map((v) => v.status),
      ['deprecated', 'deprecated', 'deprecated', 'active'],
    );
    assert.deepEqual((await h.proxy.getSecret({ name: 'by-plugin' })).value, 'v3');
    assert.deepEqual((await h.proxy.getSecret({ name: 'by-plugin', version: 'previous' })).value, 'v2');
  });

  it('promoteVersion is idempotent and finishes a promotion a Lambda left with AWSPENDING on the current version', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const c = sdk(t, d);
    await h.proxy.putSecret({ name: 'resume', value: 'v0' });
    await lambdaRotation(c, 'resume', crypto.randomUUID(), 'v1');
    const current = await h.proxy.getSecret({ name: 'resume' });
    assert.deepEqual(d.secret('resume')?.versions.map((v) => v.stages.sort()), [['AWSPREVIOUS'], ['AWSCURRENT', 'AWSPENDING']]);
    const again = await h.proxy.promoteVersion({ name: 'resume', version: current.version });
    assert.deepEqual(again.stages, ['current']);
    assert.deepEqual(d.secret('resume')?.versions.map((v) => v.stages), [['AWSPREVIOUS'], ['AWSCURRENT']]);
    const calls = d.calls.length;
    await h.proxy.promoteVersion({ name: 'resume', version: 'current' });
    assert.equal(d.calls.slice(calls).filter((x) => x.operation === 'UpdateSecretVersionStage').length, 0, 'a finished promotion moves nothing');
  });

  it('a pending version revoked before promotion cannot be promoted (WM_ERR_CONFLICT) and the current one stays', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const v0 = await h.proxy.putSecret({ name: 'abort', value: 'v0' });
    const pending = await h.proxy.createPendingVersion({ name: 'abort' });
    await h.proxy.revokeVersion({ name: 'abort', version: 'pending' });
    assert.equal((await rejection(() => h.proxy.promoteVersion({ name: 'abort', version: pending.version }))).code, 'WM_ERR_CONFLICT');
    assert.equal((await h.proxy.getSecret({ name: 'abort' })).version, v0.version);
    assert.deepEqual(d.secret('abort')?.versions.map((v) => v.stages), [['AWSCURRENT'], []]);
  });
});
