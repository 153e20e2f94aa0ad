import type { ContainerGroup, EnvironmentVariable } from '@azure/arm-containerinstance';
import { WorkerManagerError, type RuntimeSpec, type SecretMount } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** The one container of a worker's container group. */
export const CONTAINER_NAME = 'worker';

const unsupported = (workerId: string, field: string, why: string): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_COMPATIBILITY', `worker '${workerId}': ${field} cannot be honoured on Azure Container Instances (${why})`, { details: { workerId, field } });

/**
 * The container group for a worker: one Linux container, `restartPolicy: Never` (a worker that ends stays ended, with
 * its exit code, until it is terminated), environment from the spec and env secrets as `secureValue`s, which ARM
 * never returns. ACI has no separate args, working directory or user: `command` and `args` join into the one command,
 * and the others are refused rather than silently dropped.
 */
export function planGroup(workerId: string, spec: RuntimeSpec, secrets: readonly SecretMount[], tags: Record<string, string>, config: ResolvedConfig): ContainerGroup {
  if (spec.image === undefined) throw new WorkerManagerError('WM_ERR_VALIDATION', `worker '${workerId}': an Azure Container Instances worker needs an image`, { details: { workerId, field: 'image' } });
  if (spec.args !== undefined && spec.command === undefined) throw unsupported(workerId, 'args', "ACI's command replaces the image's entrypoint; give the whole command line in command");
  if (spec.workingDir !== undefined) throw unsupported(workerId, 'workingDir', 'ACI has no working directory setting');
  if (spec.user !== undefined) throw unsupported(workerId, 'user', 'ACI runs the image user');
  if (spec.readOnlyRootFilesystem === true) throw unsupported(workerId, 'readOnlyRootFilesystem', 'ACI has no read-only root filesystem');
  const env: EnvironmentVariable[] = Object.entries(spec.env ?? {}).map(([name, value]) => ({ name, value }));
  for (const m of secrets) {
    if (m.strategy !== 'env') throw unsupported(workerId, `secret ${m.name}`, 'only env secrets are supported (as secure environment variables)');
    const i = env.findIndex((e) => e.name === m.envName);
    if (i >= 0) env.splice(i, 1);
    env.push({ name: m.envName, secureValue: m.value });
  }
  const cpu = spec.resources?.cpuMillicores === undefined ? config.cpu : Math.ceil(spec.resources.cpuMillicores / 10) / 100;
  // ACI counts memory in GB with one decimal.
  const memoryInGB = spec.resources?.memoryMiB === undefined ? config.memoryInGB : Math.ceil((spec.resources.memoryMiB / 1024) * 10) / 10;
  const command = spec.command === undefined ? undefined : [...spec.command, ...(spec.args ?? [])];
  return {
    location: config.location,
    tags,
    osType: 'Linux',
    restartPolicy: 'Never',
    containers: [
      {
        name: CONTAINER_NAME,
        image: spec.image,
        ...(command === undefined ? {} : { command }),
        environmentVariables: env,
        resources: { requests: { cpu, memoryInGB } },
      },
    ],
  };
}
