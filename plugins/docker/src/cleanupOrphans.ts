import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import type { OwnerLabels, PluginLogger } from '@worker-manager/plugin-sdk';
import { mapDockerError, statusOf } from './dockerErrors.ts';
import { ownerFilter, type LabelKeys } from './labels.ts';
import type { Names } from './names.ts';
import { convergeNetworks } from './networks.ts';

/** What a cleanup pass removed. */
export interface CleanupReport {
  containers: string[];
  networks: string[];
  /** Names that had more than one network (made by racing threads or hosts, or by an older version), now one. */
  duplicateNetworks: string[];
  volumes: string[];
  folders: string[];
}

/** What {@link cleanupOrphans} needs. */
export interface CleanupInput {
  docker: Docker;
  keys: LabelKeys;
  owner: OwnerLabels;
  names: Names;
  /** Containers still `created` (never started) this long after creation were left by a dead thread. */
  abandonedCreateMs: number;
  /** Folder of terminate/restart markers. */
  markersDir: string;
  logger?: PluginLogger;
  now?: number;
}

const MARKER_TTL_MS = 10 * 60_000;
const SILENT: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} };

function olderThan(createdMs: number, now: number, ms: number): boolean {
  return Number.isFinite(createdMs) && now - createdMs >= ms;
}

/**
 * Keeps one network of each name (see {@link convergeNetworks}: racing makers, or an older version, can leave two,
 * after which no container can join the name), then removes what this host and instance own that no worker claims:
 * containers that were created but never started by a thread that died (older than `abandonedCreateMs`), per-worker
 * networks and volumes whose worker has no container, host folders of secret files whose container (same worker id
 * and epoch) is gone, and old markers. Anything younger than `abandonedCreateMs` is left alone: a create in progress
 * on another thread may own it. Persistent volumes (PersistentVolume claims) and the instance network (its one kept
 * copy) are never removed.
 */
export async function cleanupOrphans(input: CleanupInput): Promise<CleanupReport> {
  const { docker, keys, owner } = input;
  const now = input.now ?? Date.now();
  const report: CleanupReport = { containers: [], networks: [], duplicateNetworks: [], volumes: [], folders: [] };
  let rows: Docker.ContainerInfo[];
  try {
    rows = await docker.listContainers({ all: true, filters: ownerFilter(keys, owner, { [keys.kind]: 'worker' }) });
  } catch (error) {
    throw mapDockerError(error, 'cleanup');
  }
  const live = new Set<string>();
  const liveContainers = new Set<string>();
  const liveIncarnations = new Set<string>();
  for (const row of rows) {
    const id = row.Labels[keys.workerId] ?? '';
    if (row.State === 'created' && olderThan(row.Created * 1_000, now, input.abandonedCreateMs)) {
      try {
        await docker.getContainer(row.Id).remove({ force: true, v: true });
        report.containers.push(id);
        continue;
      } catch (error) {
        if (statusOf(error) !== 404) input.logger?.warn('docker provider: cleanup could not remove a container', { workerId: id, status: statusOf(error) });
      }
    }
    live.add(id);
    liveContainers.add(row.Id);
    liveIncarnations.add(`${id}.${row.Labels[keys.epoch] ?? ''}`);
  }

  let networks = await docker.listNetworks({ filters: ownerFilter(keys, owner, { [keys.kind]: 'network' }) }).catch(() => [] as Docker.NetworkInspectInfo[]);
  // Two networks of one name make every container that joins it by name fail ("network ... is ambiguous"): keep one.
  const byName = new Map<string, Docker.NetworkInspectInfo[]>();
  for (const n of networks) byName.set(n.Name, [...(byName.get(n.Name) ?? []), n]);
  const kept = new Set<string>();
  for (const [name, group] of byName) {
    if (group.length === 1) continue;
    kept.add(await convergeNetworks(docker, group, input.logger ?? SILENT));
    report.duplicateNetworks.push(name);
  }
  networks = networks.filter((n) => byName.get(n.Name)!.length === 1 || kept.has(n.Id));
  for (const n of networks) {
    const id = n.Labels?.[keys.workerId];
    if (id === undefined || live.has(id) || !olderThan(Date.parse(n.Created), now, input.abandonedCreateMs)) continue;
    try {
      await docker.getNetwork(n.Id).remove();
      report.networks.push(n.Name);
    } catch (error) {
      if (statusOf(error) !== 404) input.logger?.warn('docker provider: cleanup could not remove a network', { network: n.Name, status: statusOf(error) });
    }
  }

  const volumes = await docker.listVolumes({ filters: ownerFilter(keys, owner, { [keys.kind]: 'volume' }) }).catch(() => ({ Volumes: [] as Docker.VolumeInspectInfo[] }));
  for (const v of volumes.Volumes ?? []) {
    const id = v.Labels?.[keys.workerId];
    const created = Date.parse((v as { CreatedAt?: string }).CreatedAt ?? '');
    if (id === undefined || live.has(id) || !olderThan(created, now, input.abandonedCreateMs)) continue;
    try {
      await docker.getVolume(v.Name).remove();
      report.volumes.push(v.Name);
    } catch (error) {
      if (statusOf(error) !== 404) input.logger?.warn('docker provider: cleanup could not remove a volume', { volume: v.Name, status: statusOf(error) });
    }
  }

  const root = input.names.filesRoot();
  for (const entry of safeReaddir(root)) {
    if (liveIncarnations.has(entry)) continue;
    const dir = path.join(root, entry);
    if (!olderThan(mtimeOf(dir), now, input.abandonedCreateMs)) continue;
    rmSync(dir, { recursive: true, force: true });
    report.folders.push(entry);
  }
  for (const entry of safeReaddir(input.markersDir)) {
    const file = path.join(input.markersDir, entry);
    // A deadline marker is how a stopped container is known to have hit its timeoutMs: kept while it exists.
    if (!liveContainers.has(entry) && olderThan(mtimeOf(file), now, MARKER_TTL_MS)) rmSync(file, { force: true });
  }
  if (report.containers.length + report.networks.length + report.duplicateNetworks.length + report.volumes.length + report.folders.length > 0) {
    input.logger?.info('docker provider: removed orphaned resources', { ...report });
  }
  return report;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function mtimeOf(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return Number.NaN;
  }
}
