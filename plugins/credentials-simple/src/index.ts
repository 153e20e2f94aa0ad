import { definePlugin } from '@worker-manager/plugin-sdk';
import { CredentialsSimpleConfig, resolveConfig } from './config.ts';
import { loadKeyMaterial } from './keyMaterial.ts';
import { SecretStore } from './SecretStore.ts';
import { storeError } from './storeError.ts';

/**
 * The embedded default credential store: secrets in one file under the instance's state directory, every value
 * encrypted with AES-256-GCM under a key derived (scrypt) from a key file or an environment variable. See README.md.
 */
export default definePlugin({
  id: 'credentials-simple',
  version: '0.1.0',
  kind: 'credentials',
  hostApi: '^2.0.0',
  description: 'File-backed credential store, AES-256-GCM encrypted, with versions, stages and rotation steps.',
  capabilities: {
    'secret.read': '1.0.0',
    'secret.write': '1.0.0',
    'secret.rotate': '1.0.0',
    'secret.revoke': '1.0.0',
    'secret.write.idempotent': '1.0.0',
  },
  configSchema: CredentialsSimpleConfig,
  async setup(ctx) {
    // A thread under Node's permission model without write access to its state folder (a restricted instance run in
    // the host's process) cannot keep the store; out of process, the restricted tier grants that folder.
    if (process.permission !== undefined && !process.permission.has('fs.write', ctx.stateDir)) {
      throw storeError('bad-config', 'credentials-simple writes its store under the state directory: run it with isolation: trusted', { instance: ctx.instance });
    }
    const config = resolveConfig(ctx.config);
    const material = await loadKeyMaterial(config, ctx.stateDir);
    return new SecretStore(config, ctx.stateDir, material, ctx.logger).handlers();
  },
});
