import path from 'node:path';
import { WorkerManagerError, type RuntimeSpec, type SecretMount } from '@worker-manager/plugin-sdk';

/** What the provider derives from a spec it accepts. */
export interface ProcessPlan {
  argv: string[];
  /** Working directory relative to the worker's `work/` folder ('' for the folder itself). */
  workingDir: string;
  memoryKiB?: number;
}

/** A relative path that stays inside its base folder, or undefined. */
export function containedRelative(p: string): string | undefined {
  const rel = path.posix.normalize(p.replace(/^\/+/, ''));
  if (rel === '.' || rel === '' || rel === '..' || rel.startsWith('../')) return undefined;
  return rel;
}

/**
 * Rejects what a local process cannot honour: no command is `WM_ERR_VALIDATION`; container features (image, ports,
 * volumes, user, read-only root, GPU, CPU quota, health checks, network policies) are `WM_ERR_COMPATIBILITY`.
 * The host refuses most of these before routing (they need capabilities this plugin does not declare); this is the
 * plugin's own guard.
 */
export function checkSpec(spec: RuntimeSpec, secrets: readonly SecretMount[]): ProcessPlan {
  if (spec.command === undefined || spec.command.length === 0) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', 'spec.command is required: the process provider runs a command, not an image', {
      details: { instancePath: '/spec/command' },
    });
  }
  const unsupported: string[] = [];
  if (spec.image !== undefined) unsupported.push('image');
  if ((spec.ports?.length ?? 0) > 0) unsupported.push('ports');
  if ((spec.volumes?.length ?? 0) > 0) unsupported.push('volumes');
  if (spec.user !== undefined) unsupported.push('user');
  if (spec.readOnlyRootFilesystem === true) unsupported.push('readOnlyRootFilesystem');
  if (spec.healthCheck !== undefined) unsupported.push('healthCheck');
  if (spec.resources?.cpuMillicores !== undefined) unsupported.push('resources.cpuMillicores');
  if ((spec.resources?.gpu ?? 0) > 0) unsupported.push('resources.gpu');
  if (spec.network?.isolation === 'Strict' || spec.network?.isolation === 'Complete') unsupported.push(`network.isolation ${spec.network.isolation}`);
  if ((spec.network?.accessPolicies?.length ?? 0) > 0) unsupported.push('network.accessPolicies');
  if (unsupported.length > 0) {
    throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `the process provider cannot honour ${unsupported.join(', ')}`, { details: { unsupported } });
  }
  let workingDir = '';
  if (spec.workingDir !== undefined) {
    const rel = path.isAbsolute(spec.workingDir) ? undefined : containedRelative(spec.workingDir);
    if (rel === undefined) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', "spec.workingDir must be a relative path inside the worker's folder", {
        details: { instancePath: '/spec/workingDir' },
      });
    }
    workingDir = rel;
  }
  checkSecretMounts(secrets);
  const plan: ProcessPlan = { argv: [...spec.command, ...(spec.args ?? [])], workingDir };
  if (spec.resources?.memoryMiB !== undefined) plan.memoryKiB = spec.resources.memoryMiB * 1024;
  return plan;
}

/** Refuses a file or volume secret mount whose path would leave the worker's secrets folder (without its value). */
export function checkSecretMounts(secrets: readonly SecretMount[]): void {
  secrets.forEach((mount, i) => {
    if (mount.strategy !== 'env' && containedRelative(mount.path) === undefined) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `secret mount '${mount.name}': path must name a file inside the secrets folder`, {
        details: { instancePath: `/secrets/${i}/path`, secret: mount.name },
      });
    }
  });
}
