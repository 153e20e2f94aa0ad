import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { VaultDouble } from '../doubles/vault.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { pluginPolicy } from '../plugins/credentials-vault/helpers.ts';
import { describeRotationLoad, VALUE_BYTES } from './rotationLoadScenario.ts';

// Issue 16: the rotation-under-load scenario (rotationLoadScenario.ts) against credentials-vault, the real plugin and
// node-vault client talking to the Vault double (KV version 2, token auth, the least-privilege policy of
// docs/credentials-vault.md). The KV mount keeps Vault's default of 10 versions: 100 rotations prune the oldest ones
// on the way, as a real Vault would, which the rotation must not notice.

await describeRotationLoad({
  title: 'credentials-vault against the Vault double',
  tag: 'rotvault',
  instance: 'vault',
  async setup(t) {
    const vault = await VaultDouble.start();
    t.after(() => vault.close());
    vault.setPolicy('wm', pluginPolicy('wm'));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-rotload-vault-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // The token from a file, as docs/credentials-vault.md asks: never in the YAML.
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, `${vault.createToken({ policies: ['wm'] })}\n`, { mode: 0o600 });
    return {
      pluginYaml: `  - name: credentials-vault
    package: ${repoRoot}plugins/credentials-vault`,
      instanceYaml: `  - name: vault
    plugin: credentials-vault
    config: { address: "${vault.address}", pathPrefix: wm, auth: { method: token, token: { file: ${tokenFile} } }, generatedValueBytes: ${VALUE_BYTES} }`,
      verify(chain) {
        // What Vault itself holds: the stage pointers in custom_metadata, and the versions' data.
        const key = vault.inspect('secret', 'wm/token');
        assert.ok(key !== undefined, 'the key exists in Vault');
        const newest = chain.at(-1) as string;
        assert.equal(key.customMetadata?.['wm-current'], newest, JSON.stringify(key.customMetadata));
        assert.equal(key.customMetadata?.['wm-pending'], undefined, `no version left pending: ${JSON.stringify(key.customMetadata)}`);
        assert.equal(String(key.currentVersion), newest, 'the newest version is also Vault\'s latest');
        for (const [version, state] of Object.entries(key.versions)) {
          assert.equal(state.destroyed, version !== newest, `version ${version}: destroyed ${state.destroyed}`);
          assert.equal(state.hasData, version === newest, `version ${version}: holds data ${state.hasData}`);
        }
      },
    };
  },
});
