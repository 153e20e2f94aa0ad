import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import plugin from '@worker-manager/plugin-credentials-keycloak';
import { checkPluginMetadata, createPluginHarness } from '@worker-manager/plugin-sdk/testing';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { CredentialsKeycloakConfig } from '../../../plugins/credentials-keycloak/src/config.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';
import { expectCode } from './helpers.ts';

const base = { baseUrl: 'https://sso.example.com', realm: 'ci', admin: { clientId: 'wm-rotator', secret: { env: 'NOPE' } }, clients: [{ clientId: 'ci-runner', rotate: true }] };

describe('credentials-keycloak package and config', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/credentials-keycloak)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/credentials-keycloak/', import.meta.url)), plugin);
  });

  it('declares secret.rotate.immediate: a regenerated Keycloak secret is live at once', () => {
    assert.equal(plugin.capabilities['secret.rotate.immediate'], '1.0.0');
    assert.equal(plugin.capabilities['secret.write'], undefined, 'Keycloak secrets are generated, never written');
  });

  it('config/examples/keycloak.yaml is a valid host config whose keycloak instance config the plugin accepts', async () => {
    const result = await validateConfigFile(path.join(repoRoot, 'config/examples/keycloak.yaml'), { PATH: '/usr/bin:/bin' });
    assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.issues));
    const names = new Set(result.config.plugins.filter((p) => p.package.endsWith('plugins/credentials-keycloak')).map((p) => p.name));
    const instances = result.config.instances.filter((i) => names.has(i.plugin));
    assert.equal(instances.length, 1);
    const config = Value.Default(CredentialsKeycloakConfig, structuredClone(instances[0]?.config));
    assert.ok(Compile(CredentialsKeycloakConfig).Check(config));
  });

  it('refuses configs that cannot work with WM_ERR_CONFIGURATION naming the field', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['http without allowHttp', { ...base, baseUrl: 'http://sso.example.com' }, 'baseUrl'],
      ['rotate without admin', { ...base, admin: undefined, clients: [{ clientId: 'ci-runner', secret: { env: 'X' }, rotate: true }] }, 'clients/0/rotate'],
      ['admin source without admin', { ...base, admin: undefined, clients: [{ clientId: 'ci-runner' }] }, 'clients/0/secret'],
      ['a prefix with a file', { ...base, clients: [{ clientId: 'team-*', secret: { file: 'x' } }] }, 'clients/0/secret'],
    ];
    for (const [what, config, field] of cases) {
      const e = await expectCode(createPluginHarness(plugin, { config: JSON.parse(JSON.stringify(config)) as unknown }), 'WM_ERR_CONFIGURATION', what);
      assert.equal((e.details as { field?: string }).field, field, what);
    }
    await expectCode(createPluginHarness(plugin, { config: { ...base, baseUrl: 'https://sso.example.com/' } }), 'WM_ERR_CONFIGURATION', 'a trailing slash fails the schema');
    await expectCode(createPluginHarness(plugin, { config: { ...base, clients: [] } }), 'WM_ERR_CONFIGURATION', 'no clients');
  });

  it('a missing admin secret variable is WM_ERR_CONFIGURATION naming the variable, at the first call that needs it', async (t) => {
    const h = await createPluginHarness(plugin, { config: base });
    t.after(() => h.close());
    const e = await expectCode(h.proxy.getSecret({ name: 'client-secret/ci-runner' }), 'WM_ERR_CONFIGURATION', 'admin secret env not set');
    assert.match(e.message, /NOPE/);
  });
});
