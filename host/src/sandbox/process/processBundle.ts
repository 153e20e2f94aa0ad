import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { hostError } from '../../errors.ts';
import { isBoundaryRefusal, packageBoundaryPlugin } from '../bundleGuard.ts';
import { copyPluginPackage } from '../copyPluginPackage.ts';

/** The files an out-of-process sandbox runs: everything lives under `dir`, which the sandbox sees read-only. */
export interface ProcessBundle {
  dir: string;
  /** Writable by the sandbox: the egress proxy's socket lives here. */
  runDir: string;
  /** The sandbox process's entry (sandboxMain.ts, bundled). */
  sandboxFile: string;
  /** piscina filename of the plugin threads. */
  threadFile: string;
  /** file: URL of the plugin's bundle. */
  pluginUrl: string;
  /** The copy of the plugin package: what the plugin may read of its own files. */
  packageDir: string;
  dispose(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const threadMain = join(here, '..', 'thread', 'threadMain.ts');
const sandboxMain = join(here, 'sandboxMain.ts');
const require = createRequire(import.meta.url);
// piscina loads its thread script from its own folder, so it is copied whole rather than bundled.
const PISCINA_DIR = dirname(dirname(require.resolve('piscina')));
const SDK_DIR = dirname(require.resolve('@worker-manager/plugin-sdk/package.json'));

/** Bundles kept for reuse, per user: a restart of the host, or a second instance of one plugin, skips the build. */
const CACHE_ROOT = join(tmpdir(), `wm-restricted-bundles-${process.getuid?.() ?? 'user'}`);
/** A cached bundle unused for this long is removed when another is built. */
const CACHE_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** What makes a cached bundle valid: every file esbuild read outside the package copy, as it was then. */
const MANIFEST = 'inputs.json';

/**
 * Builds (or finds in the cache) what a restricted instance runs out of process:
 * 1. a copy of the plugin package (symlinks that leave it are refused: copyPluginPackage.ts);
 * 2. one esbuild build, from the copy, of the sandbox entry, the thread entry and the plugin, sharing one copy of the
 *    SDK. The plugin's imports may not leave its package (or the SDK and the dependencies it resolves), nor load a
 *    non-code file: bundleGuard.ts. The plugin's code is only parsed here, never run;
 * 3. piscina, beside the bundle, where the sandbox entry resolves it.
 *
 * Bundling takes most of a restricted instance's cold start, so the result is kept, keyed by the copy's content (and
 * the entry, Node's major version and where this host's code lives), and reused while every other file the build read
 * (host code, SDK, dependencies) still has the size and modification time it had. The copy is made and checked on
 * every start. The host's folder is in the key because the cache is per user, not per checkout: two installations
 * with the same plugin would otherwise run each other's sandbox code, as long as the other's files stayed unchanged.
 */
export async function buildProcessBundle(options: { entry: string; packageDir: string; label: string }): Promise<ProcessBundle> {
  const realPackage = await realpath(options.packageDir);
  const realEntry = await realpath(options.entry);
  const inside = relative(realPackage, realEntry);
  if (inside.startsWith('..') || inside.startsWith(sep)) throw new Error(`the plugin entry ${options.entry} is outside its package ${options.packageDir}`);
  await ensureCacheRoot();
  const runDir = await mkdtemp(join(tmpdir(), `wm-restricted-run-${options.label.replace(/[^a-z0-9-]/gi, '_')}-`));
  const dispose = (): Promise<void> => rm(runDir, { recursive: true, force: true });
  const staging = await mkdtemp(join(CACHE_ROOT, 'staging-'));
  try {
    const packageCopy = join(staging, 'package');
    await copyPluginPackage(options.packageDir, packageCopy);
    const key = createHash('sha256').update(`${inside}\0${process.versions.node.split('.')[0]}\0${await realpath(here)}\0`).update(await treeDigest(packageCopy)).digest('hex').slice(0, 32);
    const dir = join(CACHE_ROOT, key);
    if (!(await validCache(dir))) {
      await bundleInto(staging, packageCopy, inside, realPackage);
      // Another start of the same plugin (a second instance) may have built and moved its bundle in while this one
      // built: that bundle may already be running, so it is kept, never deleted under it.
      if (!(await validCache(dir))) {
        await rm(dir, { recursive: true, force: true });
        // Atomic: a concurrent start of the same plugin sees either no bundle or a whole one.
        await rename(staging, dir).catch(async (error: unknown) => {
          if (!(await validCache(dir))) throw error;
        });
      }
      void pruneCache(key);
    }
    const now = new Date();
    await utimes(dir, now, now).catch(() => {});
    return {
      dir,
      runDir,
      sandboxFile: join(dir, 'sandbox.mjs'),
      threadFile: join(dir, 'thread.mjs'),
      pluginUrl: pathToFileURL(join(dir, 'plugin.mjs')).href,
      packageDir: join(dir, 'package'),
      dispose,
    };
  } catch (error) {
    await dispose();
    if (isBoundaryRefusal(error)) {
      const refusals = ((error as { errors?: Array<{ text?: string }> }).errors ?? []).map((e) => e.text ?? '').filter((t) => t !== '');
      throw hostError('HOST_ERR_PLUGIN_PACKAGE_UNSAFE', refusals.slice(0, 3).join('; '), { details: { refusals: refusals.slice(0, 10) } });
    }
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function bundleInto(dir: string, packageCopy: string, inside: string, realPackage: string): Promise<void> {
  const nodePaths = nodeModulesAbove(realPackage);
  const guard = packageBoundaryPlugin({
    packageDir: packageCopy, allowedRoots: [await realpath(SDK_DIR), ...(await sdkDependencyDirs()), ...nodePaths], hostEntries: [sandboxMain, threadMain],
  });
  const result = await build({
    entryPoints: { sandbox: sandboxMain, thread: threadMain, plugin: join(packageCopy, inside) },
    outdir: dir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    outExtension: { '.js': '.mjs' },
    logLevel: 'silent',
    metafile: true,
    absWorkingDir: dir,
    // The copy lives in a temp folder: its bare imports resolve from where the package was installed.
    nodePaths,
    // Only the host's own code imports these, on paths the sandbox never takes.
    external: ['piscina', 'esbuild', 'tsx', 'tsx/*'],
    plugins: [guard],
    banner: { js: "import { createRequire as __wmCreateRequire } from 'node:module'; const require = __wmCreateRequire(import.meta.url);" },
  });
  await cp(PISCINA_DIR, join(dir, 'node_modules', 'piscina'), { recursive: true, dereference: true });
  const inputs: Array<[string, number, number]> = [];
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = resolve(dir, input);
    if (file.startsWith(packageCopy + sep)) continue;
    const info = await stat(file);
    inputs.push([file, info.size, info.mtimeMs]);
  }
  await writeFile(join(dir, MANIFEST), JSON.stringify(inputs));
}

/** True when `dir` holds a whole bundle whose inputs outside the package are unchanged. */
async function validCache(dir: string): Promise<boolean> {
  let inputs: Array<[string, number, number]>;
  try {
    inputs = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Array<[string, number, number]>;
  } catch {
    return false;
  }
  for (const [file, size, mtimeMs] of inputs) {
    const info = await stat(file).catch(() => undefined);
    if (info === undefined || info.size !== size || info.mtimeMs !== mtimeMs) return false;
  }
  return true;
}

/** The cache folder, private to this user: a bundle another user could write would run as the plugin. */
async function ensureCacheRoot(): Promise<void> {
  await mkdir(CACHE_ROOT, { recursive: true, mode: 0o700 });
  const info = await lstat(CACHE_ROOT);
  const uid = process.getuid?.();
  if (!info.isDirectory() || (uid !== undefined && info.uid !== uid) || (info.mode & 0o077) !== 0) {
    throw new Error(`the bundle cache ${CACHE_ROOT} is not a folder private to this user; remove it`);
  }
}

/** A digest of every file's relative path and content under `root` (the package copy, which holds no symlink). */
async function treeDigest(root: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        hash.update(`d\0${relative(root, path)}\0`);
        await walk(path);
      } else {
        hash.update(`f\0${relative(root, path)}\0`).update(await readFile(path)).update('\0');
      }
    }
  };
  await walk(root);
  return hash.digest('hex');
}

/** Removes cached bundles unused for CACHE_MAX_AGE_MS, and staging folders of builds that died. */
async function pruneCache(keep: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(CACHE_ROOT).catch(() => [] as string[])) {
    if (name === keep) continue;
    const path = join(CACHE_ROOT, name);
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && now - info.mtimeMs > (name.startsWith('staging-') ? 3_600_000 : CACHE_MAX_AGE_MS)) await rm(path, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * The folders of the host SDK's own dependencies, as Node resolves them from the SDK: the SDK imports them, and a
 * plugin installed outside the host's folder (in the config's node_modules, as a vendor's package is) has no
 * node_modules in common with the host, so without these the bundle guard would refuse the SDK's own imports. Only
 * the SDK's declared dependencies, not the host's whole node_modules.
 */
async function sdkDependencyDirs(): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(SDK_DIR, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const out: string[] = [];
  for (const name of Object.keys(manifest.dependencies ?? {})) {
    for (const nodeModules of nodeModulesAbove(SDK_DIR)) {
      const found = await realpath(join(nodeModules, name)).catch(() => undefined);
      if (found === undefined) continue;
      out.push(found);
      break;
    }
  }
  return out;
}

/** Every node_modules folder from `dir` up to the root, nearest first: where Node would resolve the package's imports. */
function nodeModulesAbove(dir: string): string[] {
  const out: string[] = [];
  let at = dir;
  for (;;) {
    out.push(join(at, 'node_modules'));
    const up = dirname(at);
    if (up === at) return out;
    at = up;
  }
}
