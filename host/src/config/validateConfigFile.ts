import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import type { HostErrorCode } from '../errors.ts';
import type { ConfigIssue } from './formatIssues.ts';
import { loadConfig, type LoadedConfig } from './loadConfig.ts';
import type { HostConfig } from './schema.ts';

/** Outcome of {@link validateConfigFile}. */
export type ConfigValidation =
  | { ok: true; config: HostConfig; loaded: LoadedConfig }
  | { ok: false; code: HostErrorCode; issues: ConfigIssue[] };

const CONFIG_CODES = new Set<string>(['HOST_ERR_CONFIG_NOT_FOUND', 'HOST_ERR_CONFIG_PARSE', 'HOST_ERR_CONFIG_ENV_MISSING', 'HOST_ERR_CONFIG_INVALID']);

/**
 * Loads a config file for `wm config validate`: every problem comes back as data, nothing is thrown for bad input
 * (an unexpected failure, i.e. a bug, still throws). Cross-references and plugin configs are the registry's job.
 */
export async function validateConfigFile(file: string, env?: NodeJS.ProcessEnv): Promise<ConfigValidation> {
  try {
    const loaded = await loadConfig(file, env === undefined ? {} : { env });
    return { ok: true, config: loaded.config, loaded };
  } catch (error) {
    if (!isWorkerManagerError(error) || !CONFIG_CODES.has(error.code)) throw error;
    const issues = Array.isArray(error.details?.issues) ? (error.details.issues as ConfigIssue[]) : [{ path: '', message: error.message }];
    return { ok: false, code: error.code as HostErrorCode, issues };
  }
}
