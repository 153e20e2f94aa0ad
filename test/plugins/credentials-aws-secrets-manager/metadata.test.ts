import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import plugin from '@worker-manager/plugin-credentials-aws-secrets-manager';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { AwsSecretsManagerConfig } from '../../../plugins/credentials-aws-secrets-manager/src/config.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';

describe('credentials-aws-secrets-manager plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/credentials-aws-secrets-manager)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/credentials-aws-secrets-manager/', import.meta.url)), plugin);
  });

  it('declares the credential capabilities, idempotent writes included', () => {
    assert.deepEqual(Object.keys(plugin.capabilities).sort(), ['secret.read', 'secret.revoke', 'secret.rotate', 'secret.write', 'secret.write.idempotent']);
  });

  it('config/examples/aws-secrets-manager.yaml is a valid host config whose instance config the plugin accepts', async () => {
    const result = await validateConfigFile(path.join(repoRoot, 'config/examples/aws-secrets-manager.yaml'), { PATH: '/usr/bin:/bin' });
    assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.issues));
    const entries = result.config.plugins.filter((p) => p.package.endsWith('plugins/credentials-aws-secrets-manager'));
    assert.equal(entries.length, 1);
    // No credential is written in the file: the keys come from the granted env, empty when the operator has none.
    assert.deepEqual(entries[0]?.env, { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_SESSION_TOKEN: '' });
    const instances = result.config.instances.filter((i) => i.plugin === entries[0]?.name);
    assert.equal(instances.length, 1);
    const config = Value.Default(AwsSecretsManagerConfig, structuredClone(instances[0]?.config));
    assert.ok(Compile(AwsSecretsManagerConfig).Check(config), JSON.stringify([...Compile(AwsSecretsManagerConfig).Errors(config)]));
  });

  it('the config schema refuses what cannot work, with the path named', () => {
    const check = Compile(AwsSecretsManagerConfig);
    assert.equal(check.Check({ maxValueBytes: 65_537 }), false, 'above the AWS SecretString limit');
    assert.equal(check.Check({ namePrefix: 'has space/' }), false);
    assert.equal(check.Check({ endpoint: 'not a url' }), false);
    assert.equal(check.Check({ accessKeyId: 'AKIA...' }), false, 'no credentials in config');
    assert.equal(check.Check({ region: 'eu-west-1', retry: { maxAttempts: 1 } }), true);
  });
});
