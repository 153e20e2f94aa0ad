import path from 'node:path';
import type Docker from 'dockerode';
import type { SecretMount } from '@worker-manager/plugin-sdk';
import { underPrefix, type SecretFileEntry } from './containerPlan.ts';
import type { LabelKeys } from './labels.ts';

/** Where a file secret of a container lives on the host, and the bind-mounted folder that holds it. */
export interface SecretFileTarget {
  /** The host file to replace. */
  file: string;
  /** The host folder bind-mounted into the container that `file` is in; gone once the worker is terminated. */
  root: string;
}

function parseEntries(value: string | undefined): SecretFileEntry[] {
  if (value === undefined) return [];
  try {
    const v = JSON.parse(value) as unknown;
    return Array.isArray(v) ? (v.filter((e) => Array.isArray(e) && e.length === 3 && e.every((x) => typeof x === 'string')) as SecretFileEntry[]) : [];
  } catch {
    return [];
  }
}

/**
 * Finds the host file behind a file/volume secret mount of a created container, from the engine's own record: the
 * container path comes from the `secret-files` label (or, for a path the worker was not created with, from the
 * same rule createWorker uses), and the host path from the bind mount of the worker's files folder that covers it.
 * Undefined when no folder of this worker's files is mounted there: the plugin never writes outside that folder.
 */
export function secretFileTarget(info: Docker.ContainerInspectInfo, keys: LabelKeys, filesRoot: string, secretsMountPath: string, mount: Exclude<SecretMount, { strategy: 'env' }>): SecretFileTarget | undefined {
  const labels = info.Config.Labels ?? {};
  const filesDir = labels[keys.secretsDir];
  if (filesDir === undefined || !underPrefix(filesDir, filesRoot) || path.posix.normalize(filesDir) === path.posix.normalize(filesRoot)) return undefined;
  const known = parseEntries(labels[keys.secretFiles]).find(([name, p]) => name === mount.name && p === mount.path);
  const target = path.posix.normalize(known?.[2] ?? (mount.path.startsWith('/') ? mount.path : path.posix.join(secretsMountPath, mount.path)));
  let best: { Source: string; Destination: string } | undefined;
  for (const m of info.Mounts) {
    if (m.Type !== 'bind' || !underPrefix(m.Source, filesDir) || target === path.posix.normalize(m.Destination) || !underPrefix(target, m.Destination)) continue;
    if (best === undefined || m.Destination.length > best.Destination.length) best = m;
  }
  if (best === undefined) return undefined;
  const rel = path.posix.relative(path.posix.normalize(best.Destination), target);
  if (rel === '' || rel.startsWith('..')) return undefined;
  return { file: path.join(best.Source, rel), root: best.Source };
}
