import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import plugin from '@worker-manager/plugin-aws-ecs';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';

describe('aws-ecs plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/aws-ecs)', async () => {
    await checkPluginMetadata(fileURLToPath(new URL('../../../plugins/aws-ecs/', import.meta.url)), plugin);
  });
});
