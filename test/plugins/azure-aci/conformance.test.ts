import { after, before, describe } from 'node:test';
import plugin from '@worker-manager/plugin-azure-aci';
import { createPluginHarness, runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import type { AzureAciDouble } from '../../doubles/azureAci.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { IMAGE, newClientSecret, newHostId, pluginConfig, startDouble, writePluginFiles, type PluginFiles } from './helpers.ts';

const skip = await requireDocker();

describe('azure-aci provider through the ARM double (in-process harness)', { skip }, () => {
  const secret = newClientSecret();
  let double: AzureAciDouble;
  let files: PluginFiles;
  // A short provisioning delay, so that createWorker answers while the group is still Pending, as on Azure.
  before(async () => {
    double = await startDouble(secret, { provisioningDelayMs: 300 });
    files = writePluginFiles(double, secret);
  });
  after(async () => {
    await double?.close();
    files?.dispose();
  });

  runProviderConformance({
    name: 'azure-aci',
    capabilities: plugin.capabilities,
    async setup() {
      const h = await createPluginHarness(plugin, { config: pluginConfig(double, files), hostId: newHostId('conf') });
      return { provider: h.proxy, events: () => h.events, teardown: () => h.close() };
    },
    longRunningSpec: (marker) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),
    delayedSpec: (marker, delayMs) => ({ image: IMAGE, command: ['sh', '-c', `sleep ${(delayMs / 1000).toFixed(3)}; echo ${marker}; exec sleep 600`] }),
    shortSpec: (marker, exitCode) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
  });
});
