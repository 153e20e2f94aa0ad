import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import plugin from '@worker-manager/plugin-credentials-vault';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { CredentialsVaultConfig } from '../../../plugins/credentials-vault/src/config.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';

describe('credentials-vault plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/credentials-vault)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/credentials-vault/', import.meta.url)), plugin);
  });

  it('config/examples/vault.yaml is a valid host config whose vault instance config the plugin accepts', async () => {
    const result = await validateConfigFile(path.join(repoRoot, 'config/examples/vault.yaml'), { PATH: '/usr/bin:/bin' });
    assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.issues));
    const plugins = new Set(result.config.plugins.filter((p) => p.package.endsWith('plugins/credentials-vault')).map((p) => p.name));
    const instances = result.config.instances.filter((i) => plugins.has(i.plugin));
    assert.equal(instances.length, 1);
    const config = Value.Default(CredentialsVaultConfig, structuredClone(instances[0]?.config));
    assert.ok(Compile(CredentialsVaultConfig).Check(config));
  });

  it('the config schema refuses a secret written into the YAML: the secret_id must be a file or a variable', () => {
    const check = Compile(CredentialsVaultConfig);
    assert.equal(check.Check({ address: 'https://v:8200', auth: { method: 'approle', roleId: 'r', secretId: 'inline-secret' } }), false);
    assert.equal(check.Check({ address: 'https://v:8200', auth: { method: 'token', token: 'hvs.inline' } }), false);
    assert.equal(check.Check({ address: 'https://v:8200', auth: { method: 'token', token: { env: 'VAULT_TOKEN' } } }), true);
  });
});
