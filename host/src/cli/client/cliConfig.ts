import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Type, { type Static } from 'typebox';
import { parse as parseYaml } from 'yaml';
import { apiEndpointPath, readApiEndpoint } from '../../api/apiEndpointFile.ts';
import { hostError } from '../../errors.ts';
import { checkerFor } from './checkerFor.ts';

/** `cli.yaml`: where the API is and how to authenticate. Every key is optional; flags and env win over it. */
export const CliConfigFile = Type.Object(
  {
    url: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'base URL of the API, e.g. http://127.0.0.1:8080' })),
    token: Type.Optional(Type.String({ minLength: 1, description: 'bearer token; prefer tokenFile, so the token is not copied around' })),
    tokenFile: Type.Optional(Type.String({ minLength: 1, description: 'file holding the bearer token (relative to this file)' })),
  },
  { additionalProperties: false },
);
/** CLI config file. */
export type CliConfigFile = Static<typeof CliConfigFile>;

/** Base URL used when neither a flag, the environment nor cli.yaml names one: the host's default `api` address. */
export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

/** Connection settings as given on the command line. */
export interface ConnectionFlags {
  url?: string;
  token?: string;
  tokenFile?: string;
}

/** Where to send requests and the bearer token to send, if any. The token is never printed. */
export interface Connection {
  url: string;
  token?: string;
}

/** `$WM_CLI_CONFIG`, else `$XDG_CONFIG_HOME/worker-manager/cli.yaml` (default `~/.config`). */
export function cliConfigPath(env: NodeJS.ProcessEnv): { file: string; explicit: boolean } {
  const given = env['WM_CLI_CONFIG'];
  if (given !== undefined && given !== '') return { file: path.resolve(given), explicit: true };
  const base = env['XDG_CONFIG_HOME'] !== undefined && env['XDG_CONFIG_HOME'] !== '' ? env['XDG_CONFIG_HOME'] : path.join(os.homedir(), '.config');
  return { file: path.join(base, 'worker-manager', 'cli.yaml'), explicit: false };
}

/** Reads and validates cli.yaml. A missing default file is no config; a missing file named by WM_CLI_CONFIG is an error. */
export async function loadCliConfig(env: NodeJS.ProcessEnv, warn: (line: string) => void = () => {}): Promise<{ file: string; config: CliConfigFile }> {
  const { file, explicit } = cliConfigPath(env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (!explicit && (error as NodeJS.ErrnoException).code === 'ENOENT') return { file, config: {} };
    throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `cannot read the CLI config ${file}: ${(error as Error).message}`, { details: { file } });
  }
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (error) {
    throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `${file} is not valid YAML: ${(error as Error).message}`, { details: { file } });
  }
  const checkConfig = checkerFor(CliConfigFile);
  if (!checkConfig.Check(data)) {
    const issues = [...checkConfig.Errors(data)].map((e) => ({ path: e.instancePath === '' ? '/' : e.instancePath, message: e.message }));
    throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `${file}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { details: { file, issues } });
  }
  if (data.token !== undefined) {
    // Like ssh with a private key: a token others can read is worth a warning, not a refusal.
    const mode = (await stat(file)).mode;
    if ((mode & 0o077) !== 0) warn(`warning: ${file} holds a token and is readable by others; chmod 600 it`);
  }
  return { file, config: data };
}

async function readToken(file: string, from: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `cannot read the token file ${file} (${from}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { details: { file } });
  }
  const token = text.trim();
  if (token === '') throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `the token file ${file} (${from}) is empty`, { details: { file } });
  return token;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The state dir of the host config `wm serve` would run here: `WM_STATE_DIR`, else `host.stateDir` of `WM_CONFIG` or
 * `config/default.yaml` (relative to the working directory, as `wm serve` reads it), resolved against the config's
 * folder. Undefined when there is no such config, or its state dir comes from the environment (`${...}`).
 */
export async function localStateDir(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const given = nonEmpty(env['WM_STATE_DIR']);
  if (given !== undefined) return path.resolve(given);
  const configFile = path.resolve(nonEmpty(env['WM_CONFIG']) ?? 'config/default.yaml');
  let data: unknown;
  try {
    data = parseYaml(await readFile(configFile, 'utf8'));
  } catch {
    return undefined;
  }
  const stateDir = (data as { host?: { stateDir?: unknown } } | null)?.host?.stateDir ?? './.wm-state';
  if (typeof stateDir !== 'string' || stateDir.includes('${')) return undefined;
  return path.resolve(path.dirname(configFile), stateDir);
}

/**
 * Resolves the connection: each setting from its flag, else its environment variable, else cli.yaml, else the local
 * host's endpoint file (a host running on this machine from the config `wm serve` would use here, see
 * {@link localStateDir}), else {@link DEFAULT_API_URL}. The token comes from the first of `--token`, `--token-file`,
 * `WM_TOKEN`, `WM_TOKEN_FILE`, `token`, `tokenFile`, and then from the local host's token file when the URL is that
 * host's.
 */
export async function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv, warn?: (line: string) => void): Promise<Connection> {
  const { file, config } = await loadCliConfig(env, warn);
  const stateDir = await localStateDir(env);
  const local = stateDir === undefined ? undefined : await readApiEndpoint(stateDir);
  const url = nonEmpty(flags.url) ?? nonEmpty(env['WM_URL']) ?? config.url ?? local?.url ?? DEFAULT_API_URL;
  if (!/^https?:\/\/[^\s]+$/.test(url)) {
    throw hostError('HOST_ERR_CLI_CONFIG_INVALID', `the API URL must start with http:// or https:// (got '${redactUrl(url)}')`, { details: { path: '--url' } });
  }
  let token: string | undefined;
  if (nonEmpty(flags.token) !== undefined) token = flags.token;
  else if (nonEmpty(flags.tokenFile) !== undefined) token = await readToken(path.resolve(flags.tokenFile as string), '--token-file');
  else if (nonEmpty(env['WM_TOKEN']) !== undefined) token = env['WM_TOKEN'];
  else if (nonEmpty(env['WM_TOKEN_FILE']) !== undefined) token = await readToken(path.resolve(env['WM_TOKEN_FILE'] as string), 'WM_TOKEN_FILE');
  else if (config.token !== undefined) token = config.token;
  else if (config.tokenFile !== undefined) token = await readToken(path.resolve(path.dirname(file), config.tokenFile), `tokenFile in ${file}`);
  else if (local?.tokenFile !== undefined && sameOrigin(url, local.url)) token = await readToken(local.tokenFile, `the local host's ${apiEndpointPath(stateDir as string)}`);
  return { url: url.replace(/\/+$/, ''), ...(token === undefined ? {} : { token }) };
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** A URL fit for messages: user and password, if any, are dropped. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}
