import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

/** The files a restricted-tier thread runs, and the folder it may read them from. */
export interface RestrictedBundle {
  dir: string;
  /** piscina filename: the thread entry, bundled. */
  threadFile: string;
  /** file: URL of the plugin entry, bundled. */
  pluginUrl: string;
  dispose(): Promise<void>;
}

const threadMain = fileURLToPath(new URL('./thread/threadMain.ts', import.meta.url));

/**
 * Bundles the thread entry and the plugin (with the SDK, typebox and every other dependency) into plain ES modules
 * in a fresh temp folder. A restricted thread can neither run a TypeScript loader (esbuild needs a worker or a child
 * process) nor read node_modules, so it gets JavaScript it can load with read access to one folder. Built in the
 * trusted main thread; the plugin's code is only parsed here, never run. Code splitting keeps one copy of the SDK
 * shared by the host side of the thread and the plugin.
 */
export async function buildRestrictedBundle(pluginEntry: string, label: string): Promise<RestrictedBundle> {
  const dir = await mkdtemp(join(tmpdir(), `wm-sandbox-${label.replace(/[^a-z0-9-]/gi, '_')}-`));
  try {
    await build({
      entryPoints: { thread: threadMain, plugin: pluginEntry },
      outdir: dir,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
      // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
      banner: { js: "import { createRequire as __wmCreateRequire } from 'node:module'; const require = __wmCreateRequire(import.meta.url);" },
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    threadFile: join(dir, 'thread.mjs'),
    pluginUrl: pathToFileURL(join(dir, 'plugin.mjs')).href,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
