/**
 * `npm run plugin:metadata -- [--check] <pluginDir>...`: writes each plugin's `workerManager` package.json block from
 * its `definePlugin` call, so the metadata the host negotiates with can never drift from the code. With `--check`
 * nothing is written; the exit code is 1 when any package drifted.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isPluginDefinition, pluginMetadataOf } from '../definePlugin.ts';

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
  const mod = (await import(pathToFileURL(entryOf(pkg, dir)).href)) as { default?: unknown };
  if (!isPluginDefinition(mod.default)) throw new Error(`${dir}: the entry module's default export is not a definePlugin() result`);
  const definition = mod.default;
  const notes: string[] = [];
  if (pkg.version !== definition.version) notes.push(`version: package.json has ${String(pkg.version)}, definePlugin has ${definition.version}`);

  // Replacing the value of an existing key keeps its position; a new block goes last.
  const next: Record<string, unknown> = { ...pkg, workerManager: pluginMetadataOf(definition) };
  const nextText = formatPackageJson(next);
  const metadataDrifted = nextText !== text;
  if (metadataDrifted) notes.push(pkg.workerManager === undefined ? 'workerManager: missing' : 'workerManager: differs from the definition');

  if (options.check === true) return { packageDir: dir, status: notes.length > 0 ? 'drifted' : 'unchanged', notes };
  if (metadataDrifted) await writeFile(file, nextText);
  return { packageDir: dir, status: metadataDrifted ? 'written' : notes.length > 0 ? 'drifted' : 'unchanged', notes };
}

/** The CLI: returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const check = argv.includes('--check');
  const dirs = argv.filter((a) => a !== '--check');
  if (dirs.length === 0 || dirs.some((d) => d.startsWith('-'))) {
    process.stderr.write('usage: npm run plugin:metadata -- [--check] <pluginDir>...\n');
    return 2;
  }
  let failed = false;
  for (const dir of dirs) {
    try {
      const r = await syncPluginMetadata(dir, { check });
      const line = `${r.status.padEnd(9)} ${path.relative(process.cwd(), r.packageDir) || '.'}${r.notes.length > 0 ? `: ${r.notes.join('; ')}` : ''}\n`;
      if (r.status === 'drifted') {
        failed = true;
        process.stderr.write(line);
      } else {
        process.stdout.write(line);
      }
    } catch (error) {
      failed = true;
      process.stderr.write(`error     ${dir}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  if (failed && check) process.stderr.write('run `npm run plugin:metadata -- <pluginDir>` to update the drifted packages\n');
  return failed ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
