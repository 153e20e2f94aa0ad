import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import plugin from '@worker-manager/plugin-credentials-simple';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';

describe('credentials-simple plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/credentials-simple)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/credentials-simple/', import.meta.url)), plugin);
  });
});
