import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { SecretMount } from '@worker-manager/plugin-sdk';
import { containedRelative } from './checkSpec.ts';
import type { WorkerPaths } from './workerPaths.ts';

/** Writes `file` / `volume` secret mounts as 0600 files under the worker's 0700 secrets folder. */
export function writeSecretFiles(paths: WorkerPaths, secrets: readonly SecretMount[]): void {
  mkdirSync(paths.secrets, { recursive: true, mode: 0o700 });
  for (const mount of secrets) {
    if (mount.strategy === 'env') continue;
    const rel = containedRelative(mount.path);
    if (rel === undefined) continue; // checkSpec rejected it already
    const file = path.join(paths.secrets, rel);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, mount.value, { mode: 0o600 });
  }
}

/** Removes every secret file of the worker. */
export function removeSecretFiles(paths: WorkerPaths): void {
  rmSync(paths.secrets, { recursive: true, force: true });
}
