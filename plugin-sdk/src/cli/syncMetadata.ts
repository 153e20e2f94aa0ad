/**
 * `npm run plugin:metadata -- [--check] <pluginDir>...` (and `wm-plugin metadata`): writes each plugin's
 * `workerManager` package.json block from its `definePlugin` call, so the metadata the host negotiates with can never
 * drift from the code. With `--check` nothing is written; the exit code is 1 when any package drifted, and each
 * difference is named.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isPluginDefinition, pluginMetadataOf, type PluginDefinition } from '../definePlugin.ts';
import { pluginMetadataDrift } from '../pluginMetadataDrift.ts';
import { isMainModule } from './isMainModule.ts';

/** What happened to one package. */
export interface SyncResult {
  packageDir: string;
  /** `unchanged`: already in sync; `written`: updated; `drifted`: differs (check mode, nothing written). */
  status: 'unchanged' | 'written' | 'drifted';
  /** Why it drifted (or what was written), one line each. */
  notes: string[];
}

interface PackageJson {
  version?: unknown;
  exports?: unknown;
  main?: unknown;
  workerManager?: unknown;
  [key: string]: unknown;
}

/** The module a package exports as `.` (string, or a conditions object with `import` / `default`), else `main`. */
function entryOf(pkg: PackageJson, packageDir: string): string {
  let dot: unknown = pkg.exports;
  if (typeof dot === 'object' && dot !== null && !Array.isArray(dot) && '.' in dot) dot = (dot as Record<string, unknown>)['.'];
  if (typeof dot === 'object' && dot !== null && !Array.isArray(dot)) {
    const conditions = dot as Record<string, unknown>;
    dot = conditions['import'] ?? conditions['default'];
  }
  const entry = typeof dot === 'string' ? dot : typeof pkg.main === 'string' ? pkg.main : undefined;
  if (entry === undefined) throw new Error(`${packageDir}/package.json has neither exports['.'] nor main`);
  return path.resolve(packageDir, entry);
}

const isTypeScript = (file: string): boolean => /\.[cm]?tsx?$/.test(file);

/**
 * Imports a plugin entry and returns its definition. Node 20 cannot import TypeScript by itself: when run by plain
 * `node` (the published `wm-plugin` bin) on a `.ts` entry, tsx is registered from the plugin's own dependencies, the
 * way the host's plugin threads do it.
 */
async function loadDefinition(entry: string, packageDir: string): Promise<PluginDefinition> {
  const url = pathToFileURL(entry).href;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !isTypeScript(entry)) throw error;
    let tsxApi: string;
    try {
      tsxApi = createRequire(path.join(packageDir, 'package.json')).resolve('tsx/esm/api');
    } catch {
      throw new Error(`${packageDir}: the entry ${path.relative(packageDir, entry)} is TypeScript and this Node cannot load it; add tsx to the plugin's devDependencies or point exports at compiled JavaScript`, { cause: error });
    }
    const { register } = (await import(pathToFileURL(tsxApi).href)) as { register(): unknown };
    register();
    mod = (await import(url)) as { default?: unknown };
  }
  if (!isPluginDefinition(mod.default)) throw new Error(`${packageDir}: the entry module's default export is not a definePlugin() result`);
  return mod.default;
}

/** Serialises a package.json the way npm does: 2-space indent, trailing newline, existing key order kept. */
export function formatPackageJson(pkg: Record<string, unknown>): string {
  return `${JSON.stringify(pkg, null, 2)}\n`;
}

/**
 * Brings one plugin package's `workerManager` block in line with its definition (or, with `check`, reports whether
 * it is). The version is never rewritten: a package.json `version` that differs from `definition.version` is
 * reported as drift, because which of the two is right is the author's call.
 */
export async function syncPluginMetadata(packageDir: string, options: { check?: boolean } = {}): Promise<SyncResult> {
  const dir = path.resolve(packageDir);
  const file = path.join(dir, 'package.json');
  const text = await readFile(file, 'utf8');
  const pkg = JSON.parse(text) as PackageJson;
  const definition = await loadDefinition(entryOf(pkg, dir), dir);
  const notes = pluginMetadataDrift(pkg, definition);

  // Replacing the value of an existing key keeps its position; a new block goes last.
  const next: Record<string, unknown> = { ...pkg, workerManager: pluginMetadataOf(definition) };
  const nextText = formatPackageJson(next);
  const metadataDrifted = nextText !== text;
  // Same content in another key order or layout: the host would accept it, but the file is not what a write makes.
  if (metadataDrifted && notes.length === 0) notes.push('workerManager: same content, but not in the key order and layout wm-plugin metadata writes');

  if (options.check === true) return { packageDir: dir, status: notes.length > 0 ? 'drifted' : 'unchanged', notes };
  if (metadataDrifted) await writeFile(file, nextText);
  return { packageDir: dir, status: metadataDrifted ? 'written' : notes.length > 0 ? 'drifted' : 'unchanged', notes };
}

/** How the CLI names itself in its messages. */
export interface MetadataCliNames {
  /** The usage line, e.g. `npm run plugin:metadata -- [--check] <pluginDir>...`. */
  usage: string;
  /** The command that fixes drift, e.g. `npm run plugin:metadata -- <pluginDir>`. */
  fix: string;
  /** Folder used when none is given; without it a folder is required. */
  defaultDir?: string;
}

const NPM_SCRIPT: MetadataCliNames = { usage: 'npm run plugin:metadata -- [--check] <pluginDir>...', fix: 'npm run plugin:metadata -- <pluginDir>' };

/** The CLI: returns the exit code. Drift in check mode names each difference, one per line, on stderr. */
export async function main(argv: readonly string[], names: MetadataCliNames = NPM_SCRIPT): Promise<number> {
  const check = argv.includes('--check');
  const given = argv.filter((a) => a !== '--check');
  const dirs = given.length === 0 && names.defaultDir !== undefined ? [names.defaultDir] : given;
  if (dirs.length === 0 || dirs.some((d) => d.startsWith('-'))) {
    process.stderr.write(`usage: ${names.usage}\n`);
    return 2;
  }
  let failed = false;
  for (const dir of dirs) {
    try {
      const r = await syncPluginMetadata(dir, { check });
      const shown = path.relative(process.cwd(), r.packageDir) || '.';
      if (r.status === 'drifted') {
        failed = true;
        process.stderr.write(`drifted   ${shown}:\n${r.notes.map((n) => `  ${n}\n`).join('')}`);
      } else {
        process.stdout.write(`${r.status.padEnd(9)} ${shown}${r.notes.length > 0 ? `: ${r.notes.join('; ')}` : ''}\n`);
      }
    } catch (error) {
      failed = true;
      process.stderr.write(`error     ${dir}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  if (failed && check) process.stderr.write(`run \`${names.fix}\` to update the drifted packages\n`);
  return failed ? 1 : 0;
}

if (isMainModule(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
