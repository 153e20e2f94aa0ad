/**
 * Builds the publishable SDK into plugin-sdk/dist-package/ (gitignored), without touching how this repository resolves
 * the SDK: the workspace keeps importing the TypeScript sources through tsx, while vendors get compiled ESM with .d.ts.
 *
 *   tsx plugin-sdk/scripts/build-package.ts                 # build the staging folder
 *   tsx plugin-sdk/scripts/build-package.ts --pack <dir>    # build, then `npm pack` it into <dir> (npm run sdk:pack -- <dir>)
 *
 * Prints the staging folder, and with --pack the tarball path, as the last line.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isMainModule } from '../src/cli/isMainModule.ts';

const run = promisify(execFile);
const sdkDir = fileURLToPath(new URL('..', import.meta.url));
const repoDir = path.dirname(sdkDir);
/** The staging folder: outside src/, so neither tsx nor the workspace ever resolve the SDK to it. */
export const STAGING_DIR = path.join(sdkDir, 'dist-package');

interface SdkPackageJson {
  name: string;
  version: string;
  description?: string;
  license?: string;
  engines?: Record<string, string>;
  exports: Record<string, string>;
  dependencies?: Record<string, string>;
}

/** `./src/x.ts` (a workspace export) to the compiled module and its declarations. */
function builtExport(source: string): { types: string; default: string } {
  if (!source.startsWith('./src/') || !source.endsWith('.ts')) throw new Error(`cannot map export ${source} to the build`);
  const base = `./dist/${source.slice('./src/'.length, -'.ts'.length)}`;
  return { types: `${base}.d.ts`, default: `${base}.js` };
}

/** The package.json vendors install: same name, version and dependencies, exports pointing at the build. */
export function publishedPackageJson(source: SdkPackageJson): Record<string, unknown> {
  const exports: Record<string, unknown> = {};
  for (const [key, target] of Object.entries(source.exports)) exports[key] = target === './package.json' ? target : builtExport(target);
  return {
    name: source.name,
    version: source.version,
    description: source.description,
    license: source.license,
    type: 'module',
    engines: source.engines,
    exports,
    types: './dist/index.d.ts',
    bin: { 'wm-plugin': './dist/cli/wmPlugin.js' },
    files: ['dist', 'README.md', 'CHANGELOG.md'],
    dependencies: source.dependencies,
  };
}

// A relative specifier ending in .ts, in `from '...'`, `import('...')` and `export ... from '...'`.
const RELATIVE_TS = /(\bfrom\s+|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g;

/**
 * tsc rewrites `.ts` specifiers in the JavaScript it emits (`rewriteRelativeImportExtensions`) but keeps them in the
 * declarations, where a consumer's TypeScript, without `allowImportingTsExtensions`, refuses them; point them at the
 * `.js` files that sit next to each `.d.ts`.
 */
async function rewriteDeclarationImports(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const text = await readFile(file, 'utf8');
    const next = text.replace(RELATIVE_TS, (_all, lead: string, quote: string, spec: string) => `${lead}${quote}${spec}.js${quote}`);
    if (next !== text) await writeFile(file, next);
  }
}

/** Compiles src/ with tsc and writes the staging folder; returns its path. */
export async function buildPackage(): Promise<string> {
  await rm(STAGING_DIR, { recursive: true, force: true });
  const tsc = path.join(repoDir, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    await run(process.execPath, [tsc, '-p', path.join(sdkDir, 'tsconfig.build.json')], { cwd: sdkDir, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`tsc failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: error });
  }
  await rewriteDeclarationImports(path.join(STAGING_DIR, 'dist'));
  const source = JSON.parse(await readFile(path.join(sdkDir, 'package.json'), 'utf8')) as SdkPackageJson;
  await writeFile(path.join(STAGING_DIR, 'package.json'), `${JSON.stringify(publishedPackageJson(source), null, 2)}\n`);
  for (const file of ['README.md', 'CHANGELOG.md']) await copyFile(path.join(sdkDir, file), path.join(STAGING_DIR, file));
  await chmod(path.join(STAGING_DIR, 'dist', 'cli', 'wmPlugin.js'), 0o755);
  return STAGING_DIR;
}

/** `npm pack` of the staging folder into `destination`; returns the tarball's absolute path. */
export async function packPackage(destination: string): Promise<string> {
  const dest = path.resolve(destination);
  await mkdir(dest, { recursive: true });
  // --ignore-scripts: the staging folder has none, and packing must never run code from elsewhere.
  const { stdout } = await run('npm', ['pack', STAGING_DIR, '--pack-destination', dest, '--json', '--ignore-scripts'], { cwd: STAGING_DIR });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
  if (packed === undefined) throw new Error(`npm pack reported nothing: ${stdout}`);
  return path.join(dest, packed.filename);
}

async function main(argv: readonly string[]): Promise<number> {
  const packIndex = argv.indexOf('--pack');
  const destination = packIndex === -1 ? undefined : argv[packIndex + 1];
  if (packIndex !== -1 && (destination === undefined || destination.startsWith('-'))) {
    // No default: a tarball dropped in the working tree would be one `git add .` away from a commit.
    process.stderr.write('usage: npm run sdk:pack -- <destinationDir>\n');
    return 2;
  }
  const staging = await buildPackage();
  process.stdout.write(`built ${path.relative(process.cwd(), staging) || '.'}\n`);
  if (destination !== undefined) process.stdout.write(`${await packPackage(destination)}\n`);
  return 0;
}

if (isMainModule(import.meta.url)) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
