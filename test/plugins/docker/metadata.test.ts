import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import plugin from '@worker-manager/plugin-docker';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';

describe('docker plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/docker)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/docker/', import.meta.url)), plugin);
  });
});
