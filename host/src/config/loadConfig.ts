import { parseEgressTarget } from '../sandbox/egress/EgressProxy.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError, type HostErrorCode } from '../errors.ts';
import { collectSchemaErrors } from './collectSchemaErrors.ts';
import { convertEnvScalars } from './convertEnvScalars.ts';
import { displayPath, formatIssue, noteEnvSources, schemaIssues, sortIssues, type ConfigIssue, type SchemaError } from './formatIssues.ts';
import { interpolateString } from './interpolateEnv.ts';
import { readYamlTree, type YamlTree } from './readYamlTree.ts';
import { HostConfig } from './schema.ts';
import type { SourcePosition } from './SourcePosition.ts';

export type { SourcePosition } from './SourcePosition.ts';

/** A loaded, interpolated, defaulted and validated config file. */
export interface LoadedConfig {
  /** The config with schema defaults applied; `host.stateDir` is absolute. */
  config: HostConfig;
  /** Absolute path of the file. */
  file: string;
  /** Folder of the file: relative paths in the config resolve against it. */
  dir: string;
  /** JSON pointer (e.g. `/instances/0/config/maxWorkers`) to the position of the deepest node on that path. */
  locate(pointer: string): SourcePosition | undefined;
  /**
   * Pointers of scalars written entirely as one `${...}`: the loader converted those the host schema wants as numbers
   * or booleans; pass the set to `convertEnvScalars` with a plugin's config schema to do the same for its `config`.
   */
  envScalars: ReadonlySet<string>;
  /**
   * Source text (`${PLUGIN_RANGE}`, `x-${A}`) of every string that took any part of its value from the environment,
   * by pointer. Such a value may be a secret: errors, logs and API answers show this text and the position, never it.
   */
  fromEnv: ReadonlyMap<string, string>;
  /** What a message may say for the string at `pointer`: `value` itself, or its source text if it came from the environment. */
  show: (pointer: string, value: string) => string;
}

/** Options of {@link loadConfig} and {@link parseConfig}. */
export interface LoadConfigOptions {
  /** Environment for `${NAME}` interpolation; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
}

// Compiled on first use: importing the loader (e.g. for its types) should not pay for the JIT.
let validator: { Errors(value: unknown): Iterable<SchemaError> } | undefined;

function configError(code: HostErrorCode, headline: string, file: string, issues: ConfigIssue[]): WorkerManagerError {
  const sorted = sortIssues(issues);
  const lines = sorted.map((issue) => `  ${formatIssue(issue)}`).join('\n');
  return hostError(code, `${headline}:\n${lines}`, { details: { file, issues: sorted } });
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** Interpolates every string scalar; returns the syntax problems and the unset variables, each once per node. */
function interpolate(
  tree: YamlTree,
  env: NodeJS.ProcessEnv,
): { invalid: ConfigIssue[]; missing: ConfigIssue[]; envScalars: Set<string>; fromEnv: Map<string, string> } {
  const invalid: ConfigIssue[] = [];
  const missing: ConfigIssue[] = [];
  const envScalars = new Set<string>();
  const fromEnv = new Map<string, string>();
  const reported = new Set<object>();
  for (const scalar of tree.strings) {
    const result = interpolateString(scalar.text, env);
    if (!result.changed) continue;
    const firstReport = !reported.has(scalar.node);
    reported.add(scalar.node);
    if (firstReport) {
      for (const message of result.invalid) invalid.push({ path: scalar.pointer, message, position: scalar.position });
      for (const name of result.missing) {
        missing.push({
          path: scalar.pointer,
          message: `environment variable ${name} is not set and has no default (set it, or write \${${name}:-default})`,
          position: scalar.position,
          expected: name,
        });
      }
    }
    scalar.set(result.value);
    if (result.names.length > 0) fromEnv.set(scalar.pointer, scalar.text);
    if (result.whole) envScalars.add(scalar.pointer);
  }
  return { invalid, missing, envScalars, fromEnv };
}

/**
 * Parses, interpolates, defaults and validates config text. `file` is used for positions and to resolve relative
 * paths. Throws HOST_ERR_CONFIG_PARSE, HOST_ERR_CONFIG_ENV_MISSING or HOST_ERR_CONFIG_INVALID, each listing every
 * problem of its kind as `file:line:col: pointer: message` (and in `details.issues`).
 */
export function parseConfig(text: string, file: string, options: LoadConfigOptions = {}): LoadedConfig {
  const absolute = path.resolve(file);
  const shown = displayPath(absolute);
  const tree = readYamlTree(text, absolute);
  if (tree.issues.length > 0) {
    throw configError('HOST_ERR_CONFIG_PARSE', `Cannot parse config file ${shown} (${plural(tree.issues.length, 'error')})`, absolute, tree.issues);
  }
  const { invalid, missing, envScalars, fromEnv } = interpolate(tree, options.env ?? process.env);
  if (invalid.length > 0) {
    throw configError('HOST_ERR_CONFIG_PARSE', `Cannot parse config file ${shown} (${plural(invalid.length, 'bad ${...} reference')})`, absolute, invalid);
  }
  if (missing.length > 0) {
    throw configError(
      'HOST_ERR_CONFIG_ENV_MISSING',
      `Config file ${shown} refers to unset environment variables (${plural(missing.length, 'reference')})`,
      absolute,
      missing,
    );
  }

  // An empty file (or one with only comments) is an empty mapping: every block has defaults.
  const raw = tree.value === null ? {} : tree.value;
  const converted = convertEnvScalars(HostConfig, raw, '', envScalars);
  const value = Value.Default(HostConfig, converted);
  validator ??= Compile(HostConfig);
  const errors = collectSchemaErrors(validator, value);
  if (errors.length > 0) {
    const issues = noteEnvSources(schemaIssues(errors, '', tree.locate, { value, schema: HostConfig }), fromEnv);
    throw configError('HOST_ERR_CONFIG_INVALID', `Config file ${shown} is invalid (${plural(issues.length, 'problem')})`, absolute, issues);
  }

  const config = value as HostConfig;
  // Stricter than the schema's pattern: the egress proxy's own parser, so a target it would refuse at start is refused here.
  const egressIssues: ConfigIssue[] = [];
  config.instances.forEach((instance, i) =>
    instance.egress.forEach((target, j) => {
      try {
        parseEgressTarget(target);
      } catch (error) {
        const pointer = `/instances/${i}/egress/${j}`;
        const position = tree.locate(pointer);
        // The parser's message quotes the target; one from the environment is described without it.
        const message = fromEnv.has(pointer) ? 'is not a valid egress target: expected host:port, for example example.com:443 or [::1]:443' : (error as Error).message;
        egressIssues.push({ path: pointer, message, ...(position === undefined ? {} : { position }) });
      }
    }),
  );
  if (egressIssues.length > 0) {
    throw configError('HOST_ERR_CONFIG_INVALID', `Config file ${shown} is invalid (${plural(egressIssues.length, 'problem')})`, absolute, noteEnvSources(egressIssues, fromEnv));
  }
  const dir = path.dirname(absolute);
  config.host.stateDir = path.resolve(dir, config.host.stateDir);
  return { config, file: absolute, dir, locate: tree.locate, envScalars, fromEnv, show: (pointer, value) => fromEnv.get(pointer) ?? value };
}

/** Reads and parses a config file; see {@link parseConfig}. A missing or unreadable file is HOST_ERR_CONFIG_NOT_FOUND. */
export async function loadConfig(file: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? 'unknown error'})`;
    throw hostError('HOST_ERR_CONFIG_NOT_FOUND', `Config file ${displayPath(absolute)} ${reason}`, { details: { file: absolute }, cause });
  }
  return parseConfig(text, absolute, options);
}
