import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PluginMetadata } from '@worker-manager/plugin-sdk';
import { Compile } from 'typebox/compile';
import { hostError } from '../errors.ts';

const checkMetadata = Compile(PluginMetadata);

/** A plugin package found on disk, with its metadata read and checked, and no code run. */
export interface ResolvedPackage {
  /** Absolute folder of the package (symlinks resolved, as Node will load it). */
  dir: string;
  name: string;
  version: string;
  metadata: PluginMetadata;
  /** Absolute path of the module whose default export is the plugin definition. */
  entry: string;
}

const isPathSpecifier = (spec: string): boolean => spec.startsWith('.') || path.isAbsolute(spec);

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Finds an installed package the way Node does: `node_modules/<name>` in the folder and each of its parents. */
async function findInstalled(name: string, fromDir: string): Promise<string | undefined> {
  let dir = fromDir;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (await exists(path.join(candidate, 'package.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function entryOf(pkg: Record<string, unknown>): string | undefined {
  const exp = pkg['exports'];
  const pick = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      return pick(o['import']) ?? pick(o['node']) ?? pick(o['default']);
    }
    return undefined;
  };
  if (typeof exp === 'string') return exp;
  if (typeof exp === 'object' && exp !== null) {
    const root = (exp as Record<string, unknown>)['.'];
    const found = pick(root ?? exp);
    if (found !== undefined) return found;
  }
  return typeof pkg['main'] === 'string' ? pkg['main'] : undefined;
}

/** Who asks for a package, and how messages may name what the config wrote. */
export interface PackageRequest {
  plugin: string;
  /**
   * How messages name the specifier: the `${...}` text it was written as when it came from the environment. A
   * specifier from the environment may be a secret, so then neither it nor a path made from it is shown. Default: the specifier.
   */
  shown?: string;
  /** `file:line:col: ` of the `package` field, put before messages about it. */
  where?: string;
}

/**
 * Resolves a plugin named in the config (a path relative to the config folder, or an installed npm name) and reads
 * its package.json `workerManager` block. Nothing of the plugin is imported here.
 */
export async function resolvePluginPackage(specifier: string, configDir: string, ids: PackageRequest): Promise<ResolvedPackage> {
  const dir = isPathSpecifier(specifier) ? path.resolve(configDir, specifier) : await findInstalled(specifier, configDir);
  const shown = ids.shown ?? specifier;
  const hidden = shown !== specifier;
  const details = { plugin: ids.plugin, package: shown };
  if (dir === undefined || !(await exists(path.join(dir, 'package.json')))) {
    const searched = isPathSpecifier(specifier) ? (hidden ? ` (relative to ${configDir})` : ` (resolved to ${dir})`) : ` (searched node_modules from ${configDir} upwards)`;
    throw hostError('HOST_ERR_PLUGIN_NOT_FOUND', `${ids.where ?? ''}plugin '${ids.plugin}': no package found at ${hidden ? shown : `'${shown}'`}${searched}`, { details });
  }
  const { realpath } = await import('node:fs/promises');
  const realDir = await realpath(dir);
  const packageJson = hidden ? `package.json of ${shown}` : path.join(realDir, 'package.json');
  let pkg: Record<string, unknown>;
  try {
    pkg = JSON.parse(await readFile(path.join(realDir, 'package.json'), 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    // The cause (a JSON or file system error) may quote the path too.
    throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${ids.plugin}': cannot read ${packageJson}${hidden ? `: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).name}` : ''}`, {
      details, ...(hidden ? {} : { cause }),
    });
  }
  const version = typeof pkg['version'] === 'string' ? pkg['version'] : undefined;
  const name = typeof pkg['name'] === 'string' ? pkg['name'] : hidden ? shown : path.basename(realDir);
  const block = pkg['workerManager'];
  if (version === undefined) {
    throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${ids.plugin}': package ${name} has no version`, { details });
  }
  if (!checkMetadata.Check(block)) {
    const problems = block === undefined ? ['no workerManager block'] : [...checkMetadata.Errors(block)].map((e) => `${e.instancePath || '/'} ${e.message}`);
    throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${ids.plugin}' (${name}@${version}): invalid workerManager block in package.json: ${problems.join('; ')}`, {
      details: { ...details, version, problems },
    });
  }
  const entryRel = entryOf(pkg);
  const entry = entryRel === undefined ? undefined : path.resolve(realDir, entryRel);
  if (entry === undefined || !(await exists(entry))) {
    throw hostError('HOST_ERR_PLUGIN_NOT_FOUND', `plugin '${ids.plugin}' (${name}@${version}): entry module ${entryRel ?? '(none: set exports or main)'} not found`, {
      details: { ...details, version },
    });
  }
  return { dir: realDir, name, version, metadata: block, entry };
}
