import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { SecretSource } from './config.ts';

/** Where a source points, for errors and logs: the file or variable name, never the content. */
export function describeSource(source: SecretSource, stateDir: string): Record<string, string> {
  return 'file' in source ? { file: path.resolve(stateDir, source.file) } : { env: source.env };
}

/**
 * Reads a client secret from its file or environment variable, at every call, so a file an operator or a secret
 * mount replaces is picked up. A trailing newline is dropped. Errors name the source, never the content.
 */
export async function readSecretSource(source: SecretSource, what: string, stateDir: string): Promise<string> {
  let raw: string;
  if ('env' in source) {
    const value = process.env[source.env];
    if (value === undefined || value.length === 0) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} is read from environment variable ${source.env}, which is not set in the plugin's threads (grant it with env: in the plugin entry)`, {
        details: { reason: 'no-credential', credential: what, env: source.env },
      });
    }
    raw = value;
  } else {
    const file = path.resolve(stateDir, source.file);
    try {
      raw = await readFile(file, 'utf8');
    } catch (cause) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} file ${file} cannot be read`, {
        details: { reason: 'no-credential', credential: what, file, errno: (cause as NodeJS.ErrnoException).code ?? null },
      });
    }
  }
  const value = raw.replace(/\r?\n$/, '');
  if (value.length === 0 || /[\r\n]/.test(value)) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} in ${'env' in source ? `environment variable ${source.env}` : 'its file'} is empty or spans several lines`, {
      details: { reason: 'bad-credential', credential: what, ...describeSource(source, stateDir) },
    });
  }
  return value;
}
