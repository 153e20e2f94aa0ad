import type { OwnerLabels, RuntimeSpec, SecretMount } from '@worker-manager/plugin-sdk';
import { readJson } from './jsonFile.ts';
import type { WorkerPaths } from './workerPaths.ts';

/** What the worker folder records about a secret mount: never its value. */
export interface SecretRecord {
  strategy: SecretMount['strategy'];
  name: string;
  version: string;
  envName?: string;
  path?: string;
}

/** `meta.json`: everything needed to answer for the worker from any thread, after any restart. */
export interface WorkerMeta {
  v: 1;
  workerId: string;
  spec: RuntimeSpec;
  secrets: SecretRecord[];
  owner: OwnerLabels;
  createdAt: string;
  /** Absolute working directory of the command. */
  cwd: string;
  /** RLIMIT_AS applied by the wrapper, in KiB. */
  memoryKiB?: number;
  /** Incremented by every restart. */
  generation: number;
  /** Pid of the wrapper shell; also the process group id. */
  pid: number;
  /** `/proc/<pid>/stat` start time of the wrapper, to tell it from a later process with the same pid. */
  startTime: string;
  startedAt: string;
  /** Epoch ms after which the worker is stopped (spec.timeoutMs). */
  deadlineAt?: number;
}

/** Reads `meta.json`; undefined while it does not exist (not created, or creation in progress). */
export function readMeta(paths: WorkerPaths): WorkerMeta | undefined {
  const meta = readJson<WorkerMeta>(paths.meta);
  if (meta === undefined || meta.v !== 1 || typeof meta.pid !== 'number' || typeof meta.startTime !== 'string') return undefined;
  return meta;
}

/** Records a secret mount without its value. */
export function secretRecord(mount: SecretMount): SecretRecord {
  return mount.strategy === 'env'
    ? { strategy: mount.strategy, name: mount.name, version: mount.version, envName: mount.envName }
    : { strategy: mount.strategy, name: mount.name, version: mount.version, path: mount.path };
}

/** The records after a restart with fresh secrets: a fresh mount replaces the record of the same variable or path. */
export function mergeSecretRecords(records: readonly SecretRecord[], fresh: readonly SecretMount[]): SecretRecord[] {
  const key = (r: SecretRecord): string => (r.strategy === 'env' ? `env:${r.envName}` : `file:${r.path}`);
  const out = new Map(records.map((r) => [key(r), r]));
  for (const m of fresh) {
    const r = secretRecord(m);
    out.set(key(r), r);
  }
  return [...out.values()];
}
