import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync, type SecretMount } from '@worker-manager/plugin-sdk';
import { containedRelative } from './checkSpec.ts';
import type { WorkerPaths } from './workerPaths.ts';

/**
 * Writes `file` / `volume` secret mounts as 0600 files under the worker's 0700 secrets folder, each replaced
 * atomically, so the same function serves the first delivery and every refresh while the worker reads. Returns how
 * many files it wrote.
 */
export function writeSecretFiles(paths: WorkerPaths, secrets: readonly SecretMount[]): number {
  mkdirSync(paths.secrets, { recursive: true, mode: 0o700 });
  let written = 0;
  for (const mount of secrets) {
    if (mount.strategy === 'env') continue;
    const rel = containedRelative(mount.path);
    if (rel === undefined) continue; // checkSpec rejected it already
    const file = path.join(paths.secrets, rel);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileAtomicSync(file, mount.value, { mode: 0o600 });
    written++;
  }
  return written;
}

/** Removes every secret file of the worker. */
export function removeSecretFiles(paths: WorkerPaths): void {
  rmSync(paths.secrets, { recursive: true, force: true });
}
