import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ResolvedConfig } from './config.ts';
import { storeError } from './storeError.ts';

/** Less than this is a typo or a placeholder, not a key. */
const MIN_KEY_BYTES = 16;

/**
 * Reads the key material named by the config. Errors name the variable or file, never its content. A trailing
 * newline is dropped so `echo key > file` and the same key in an environment variable agree.
 */
export async function loadKeyMaterial(config: ResolvedConfig, stateDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  if ((config.keyFile === undefined) === (config.keyEnv === undefined)) {
    throw storeError('no-key', 'credentials-simple needs exactly one of keyFile and keyEnv in its instance config', {
      keyFile: config.keyFile !== undefined,
      keyEnv: config.keyEnv ?? null,
    });
  }
  let material: Buffer;
  if (config.keyEnv !== undefined) {
    const value = env[config.keyEnv];
    if (value === undefined || value.length === 0) {
      throw storeError('no-key', `environment variable ${config.keyEnv} is not set in the plugin's threads (grant it with env: in the plugin entry)`, {
        keyEnv: config.keyEnv,
      });
    }
    material = Buffer.from(value.replace(/\r?\n$/, ''), 'utf8');
  } else {
    const file = path.resolve(stateDir, config.keyFile as string);
    try {
      material = await readFile(file);
    } catch (cause) {
      throw storeError('no-key', `key file ${file} cannot be read`, { keyFile: file, errno: (cause as NodeJS.ErrnoException).code ?? null });
    }
    const end = material.at(-1) === 0x0a ? (material.at(-2) === 0x0d ? material.length - 2 : material.length - 1) : material.length;
    material = material.subarray(0, end);
  }
  if (material.length < MIN_KEY_BYTES) {
    throw storeError('no-key', `the key material is shorter than ${MIN_KEY_BYTES} bytes`, {
      ...(config.keyEnv === undefined ? { keyFile: config.keyFile } : { keyEnv: config.keyEnv }),
      minBytes: MIN_KEY_BYTES,
    });
  }
  return material;
}
