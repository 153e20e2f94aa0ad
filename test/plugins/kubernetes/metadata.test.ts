import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';
import plugin from '@worker-manager/plugin-kubernetes';

describe('kubernetes plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/kubernetes)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/kubernetes/', import.meta.url)), plugin);
  });
});
