import { definePlugin } from '@worker-manager/plugin-sdk';
import { CredentialsVaultConfig, resolveConfig } from './config.ts';
import { DynamicSecrets } from './DynamicSecrets.ts';
import { KvClient } from './KvClient.ts';
import { LeaseKeeper } from './LeaseKeeper.ts';
import { LeaseStore } from './LeaseStore.ts';
import { TransitClient } from './TransitClient.ts';
import { VaultCredentials } from './VaultCredentials.ts';
import { VaultSession } from './VaultSession.ts';

/**
 * Secrets in a HashiCorp Vault KV version 2 engine: contract versions are KV versions, stages live in the key's
 * custom metadata, revoking destroys a version. Dynamic secrets (`dynamic` prefixes) are issued under leases the
 * plugin renews and revokes once the host releases them; the transit engine encrypts, decrypts, rotates and rewraps.
 * Logs in with a token, AppRole, JWT or a Kubernetes service account. See README.md and docs/credentials-vault.md.
 */
export default definePlugin({
  id: 'credentials-vault',
  version: '0.1.0',
  kind: 'credentials',
  hostApi: '^2.0.0',
  description: 'HashiCorp Vault credential store: KV v2 versions and stages, dynamic secrets under leases, transit encryption; token, AppRole, JWT and Kubernetes login.',
  capabilities: {
    'secret.read': '1.0.0',
    'secret.write': '1.0.0',
    'secret.rotate': '1.0.0',
    'secret.revoke': '1.0.0',
    'secret.write.idempotent': '1.0.0',
    'secret.lease': '1.0.0',
    'credentials.transit': '1.0.0',
  },
  configSchema: CredentialsVaultConfig,
  async setup(ctx) {
    const config = resolveConfig(ctx.config);
    // Credential files and the CA are read now, so a wrong path fails the start; Vault itself is reached on first use.
    const session = await VaultSession.open(config, ctx.stateDir, ctx.logger);
    const credentials = new VaultCredentials(config, new KvClient(config, session), ctx.logger);
    // Leases another thread (or this instance before a restart) read are renewed from here too, until released.
    const store = await LeaseStore.open(ctx.stateDir);
    const keeper = new LeaseKeeper({ session, store, logger: ctx.logger, renewFraction: config.leaseRenewFraction });
    await keeper.adopt();
    const dynamic = new DynamicSecrets(config, { session, store, keeper });
    return {
      ...dynamic.around(credentials.handlers()),
      ...new TransitClient(config, session).handlers(),
      close: () => {
        keeper.close();
        session.close();
      },
    };
  },
});
