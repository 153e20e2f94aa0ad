import { definePlugin } from '@worker-manager/plugin-sdk';
import { AciProvider } from './AciProvider.ts';
import { connectArm } from './armClient.ts';
import { AzureAciConfig, resolveConfig } from './config.ts';

export { AzureAciConfig, resolveConfig, type ResolvedConfig } from './config.ts';
export { stateOfGroup } from './groupState.ts';

/**
 * The Azure Container Instances provider: each worker is a container group with one container in the instance's
 * subscription, resource group and location, reached through Azure Resource Manager with a service principal. See
 * README.md for what maps to what, the role it needs and what ACI cannot do.
 */
export default definePlugin({
  id: 'azure-aci',
  version: '0.1.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  description: 'Runs each worker as an Azure Container Instances container group.',
  capabilities: {
    'worker.lifecycle': '2.0.0',
    'worker.logs': '1.0.0',
    'worker.logs.follow': '1.0.0',
    'worker.restart': '1.0.0',
    'worker.image': '1.0.0',
    'worker.resources.cpu': '1.0.0',
    'worker.resources.memory': '1.0.0',
    'worker.secrets.env': '1.0.0',
  },
  configSchema: AzureAciConfig,
  async setup(ctx) {
    const config = resolveConfig(ctx.config);
    const arm = await connectArm(config, ctx.stateDir);
    return new AciProvider(ctx, config, arm).handlers();
  },
});
