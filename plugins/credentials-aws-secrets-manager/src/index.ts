import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { definePlugin, egressAgent } from '@worker-manager/plugin-sdk';
import { AwsCaller } from './AwsCaller.ts';
import { AwsSecretsManagerConfig, resolveConfig } from './config.ts';
import { SecretsManagerStore } from './SecretsManagerStore.ts';

/**
 * Credential plugin over AWS Secrets Manager: versions are AWS VersionIds, stages are the AWSCURRENT / AWSPENDING /
 * AWSPREVIOUS staging labels, and the rotation steps are those of an AWS rotation Lambda. See README.md.
 */
export default definePlugin({
  id: 'credentials-aws-secrets-manager',
  version: '0.1.0',
  kind: 'credentials',
  hostApi: '^2.0.0',
  description: 'AWS Secrets Manager: versions, staging labels and rotation steps as an AWS rotation Lambda runs them.',
  capabilities: {
    'secret.read': '1.0.0',
    'secret.write': '1.0.0',
    'secret.rotate': '1.0.0',
    'secret.revoke': '1.0.0',
    'secret.write.idempotent': '1.0.0',
  },
  configSchema: AwsSecretsManagerConfig,
  setup(ctx) {
    const config = resolveConfig(ctx.config);
    // Region and credentials come from the SDK's standard chains over the env granted to the plugin; the SDK's own
    // retries are off so that AwsCaller counts and logs each one.
    const client = new SecretsManagerClient({
      ...(config.region === undefined ? {} : { region: config.region }),
      ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
      maxAttempts: 1,
      // A restricted instance reaches AWS only through the host's egress proxy (HTTPS_PROXY); without one, direct.
      requestHandler: { httpsAgent: egressAgent({ keepAlive: true }) },
    });
    const store = new SecretsManagerStore(new AwsCaller(client, config, ctx.logger), config, ctx.logger, ctx.owner);
    return {
      ...store.handlers(),
      close: () => client.destroy(),
    };
  },
});
