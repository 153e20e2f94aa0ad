import { cp, mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
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

/**
 * Builds what a restricted instance runs out of process, in a fresh temp folder:
 * 1. a copy of the plugin package (symlinks that leave it are refused: copyPluginPackage.ts);
 * 2. one esbuild build, from the copy, of the sandbox entry, the thread entry and the plugin, sharing one copy of the
 *    SDK. The plugin's imports may not leave its package (or the SDK and the dependencies it resolves), nor load a
 *    non-code file: bundleGuard.ts. The plugin's code is only parsed here, never run;
 * 3. piscina, beside the bundle, where the sandbox entry resolves it.
 */
export async function buildProcessBundle(options: { entry: string; packageDir: string; label: string }): Promise<ProcessBundle> {
  const root = await mkdtemp(join(tmpdir(), `wm-restricted-${options.label.replace(/[^a-z0-9-]/gi, '_')}-`));
  const dir = join(root, 'bundle');
  const runDir = join(root, 'run');
  const dispose = (): Promise<void> => rm(root, { recursive: true, force: true });
  try {
    await mkdir(runDir, { recursive: true });
    const packageDir = join(dir, 'package');
    await copyPluginPackage(options.packageDir, packageDir);
    const realPackage = await realpath(options.packageDir);
    const realEntry = await realpath(options.entry);
    const inside = relative(realPackage, realEntry);
    if (inside.startsWith('..') || inside.startsWith(sep)) throw new Error(`the plugin entry ${options.entry} is outside its package ${options.packageDir}`);
    const nodePaths = nodeModulesAbove(realPackage);
    const guard = packageBoundaryPlugin({ packageDir, allowedRoots: [await realpath(SDK_DIR), ...nodePaths], hostEntries: [sandboxMain, threadMain] });
    await build({
      entryPoints: { sandbox: sandboxMain, thread: threadMain, plugin: join(packageDir, inside) },
      outdir: dir,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
      // The copy lives in a temp folder: its bare imports resolve from where the package was installed.
      nodePaths,
      // Only the host's own code imports these, on paths the sandbox never takes.
      external: ['piscina', 'esbuild', 'tsx', 'tsx/*'],
      plugins: [guard],
      banner: { js: "import { createRequire as __wmCreateRequire } from 'node:module'; const require = __wmCreateRequire(import.meta.url);" },
    });
    await cp(PISCINA_DIR, join(dir, 'node_modules', 'piscina'), { recursive: true, dereference: true });
    return {
      dir,
      runDir,
      sandboxFile: join(dir, 'sandbox.mjs'),
      threadFile: join(dir, 'thread.mjs'),
      pluginUrl: pathToFileURL(join(dir, 'plugin.mjs')).href,
      packageDir,
      dispose,
    };
  } catch (error) {
    await dispose();
    if (isBoundaryRefusal(error)) {
      const refusals = ((error as { errors?: Array<{ text?: string }> }).errors ?? []).map((e) => e.text ?? '').filter((t) => t !== '');
      throw hostError('HOST_ERR_PLUGIN_PACKAGE_UNSAFE', refusals.slice(0, 3).join('; '), { details: { refusals: refusals.slice(0, 10) } });
    }
    throw error;
  }
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
