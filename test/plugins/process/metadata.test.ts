import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import plugin from '@worker-manager/plugin-process';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';

describe('process plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/process)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/process/', import.meta.url)), plugin);
  });
});
