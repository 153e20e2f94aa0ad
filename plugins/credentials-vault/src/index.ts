import { definePlugin } from '@worker-manager/plugin-sdk';
import { CredentialsVaultConfig, resolveConfig } from './config.ts';
import { KvClient } from './KvClient.ts';
import { VaultCredentials } from './VaultCredentials.ts';
import { VaultSession } from './VaultSession.ts';

/**
 * Secrets in a HashiCorp Vault KV version 2 engine: contract versions are KV versions, stages live in the key's
 * custom metadata, revoking destroys a version. Logs in with a token, AppRole, JWT or a Kubernetes service account.
 * See README.md and docs/credentials-vault.md.
 */
export default definePlugin({
  id: 'credentials-vault',
  version: '0.1.0',
  kind: 'credentials',
  hostApi: '^2.0.0',
  description: 'HashiCorp Vault KV v2 credential store: versions, stages in custom metadata, check-and-set writes; token, AppRole, JWT and Kubernetes login.',
  capabilities: {
    'secret.read': '1.0.0',
    'secret.write': '1.0.0',
    'secret.rotate': '1.0.0',
    'secret.revoke': '1.0.0',
    'secret.write.idempotent': '1.0.0',
  },
  configSchema: CredentialsVaultConfig,
  async setup(ctx) {
    const config = resolveConfig(ctx.config);
    // Credential files and the CA are read now, so a wrong path fails the start; Vault itself is reached on first use.
    const session = await VaultSession.open(config, ctx.stateDir, ctx.logger);
    const credentials = new VaultCredentials(config, new KvClient(config, session), ctx.logger);
    return {
      ...credentials.handlers(),
      close: () => session.close(),
    };
  },
});
