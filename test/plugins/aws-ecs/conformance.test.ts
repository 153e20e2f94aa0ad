import { after, describe } from 'node:test';
import plugin from '@worker-manager/plugin-aws-ecs';
import { runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import type { EcsDouble } from '../../doubles/awsEcs.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { grantTestEnv, harness, IMAGE, startDouble } from './helpers.ts';

const skip = await requireDocker();
grantTestEnv();

describe('aws-ecs provider through the ECS double (in-process harness)', { skip }, () => {
  let double: EcsDouble | undefined;
  after(async () => {
    await double?.close();
  });
  runProviderConformance({
    name: 'aws-ecs',
    capabilities: plugin.capabilities,
    async setup() {
      double = await startDouble();
      const h = await harness(double);
      return { provider: h.proxy, teardown: () => h.close() };
    },
    longRunningSpec: (marker) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),
    delayedSpec: (marker, delayMs) => ({ image: IMAGE, command: ['sh', '-c', `sleep ${(delayMs / 1000).toFixed(3)}; echo ${marker}; exec sleep 600`] }),
    shortSpec: (marker, exitCode) => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exit ${exitCode}`] }),
  });
});
