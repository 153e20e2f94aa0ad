/**
 * `wm-plugin init <dir> --kind provider|credentials --name <id>`: scaffolds a plugin package that passes
 * `wm-plugin metadata --check` and its own conformance test as written, so a vendor starts from green and replaces
 * the in-memory (provider) or file (credentials) backend with theirs.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Type from 'typebox';
import { definePlugin, pluginMetadataOf } from '../definePlugin.ts';
import type { PluginKind } from '../pluginMetadata.ts';
import { HOST_API_VERSION } from '../version.ts';
import { scaffoldTemplates } from './scaffoldTemplates.ts';
import { formatPackageJson } from './syncMetadata.ts';

/** What {@link initPlugin} scaffolds. */
export interface InitPluginOptions {
  /** The plugin id: lowercase, `^[a-z][a-z0-9-]{0,62}$`; it names the plugin in the host's reports and errors. */
  id: string;
  kind: PluginKind;
  /** npm package name; default `wm-plugin-<id>`. */
  packageName?: string;
}

const ID = /^[a-z][a-z0-9-]{0,62}$/;

// The config schemas the templates declare, built here too so the package.json block is written without importing the
// new package (its dependencies are not installed yet). `wm-plugin metadata --check` in the scaffold test keeps the
// two copies honest.
const CONFIG_SCHEMAS = {
  provider: Type.Object(
    { maxWorkers: Type.Integer({ minimum: 1, default: 100, description: 'workers this instance accepts at once' }) },
    { additionalProperties: false },
  ),
  credentials: Type.Object(
    { dir: Type.String({ minLength: 1, description: 'folder holding one JSON file per secret' }) },
    { additionalProperties: false },
  ),
};

const CAPABILITIES: Record<PluginKind, Record<string, string>> = {
  provider: { 'worker.lifecycle': '2.0.0' },
  credentials: { 'secret.read': '1.0.0' },
};

/** The SDK's own package.json: the scaffold depends on the version that made it. */
async function sdkPackage(): Promise<{ name: string; version: string }> {
  // The same relative path from src/cli/ in the repository and from dist/cli/ in the published package.
  return JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
}

/**
 * Writes a new plugin package into `dir` (which must be missing or empty): package.json with its `workerManager`
 * block, `src/index.ts` (a `definePlugin` call with a typebox config schema), a conformance test, README.md,
 * tsconfig.json and .gitignore. Returns the files written, relative to `dir`.
 */
export async function initPlugin(dir: string, options: InitPluginOptions): Promise<string[]> {
  if (!ID.test(options.id)) throw new Error(`plugin id '${options.id}' must match ${ID.source}`);
  const target = path.resolve(dir);
  const existing = await readdir(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  if (existing.length > 0) throw new Error(`${target} is not empty; wm-plugin init only writes into a new or empty folder`);

  const sdk = await sdkPackage();
  const version = '0.1.0';
  const definition = definePlugin({
    id: options.id,
    version,
    kind: options.kind,
    hostApi: `^${HOST_API_VERSION}`,
    capabilities: CAPABILITIES[options.kind],
    configSchema: CONFIG_SCHEMAS[options.kind],
    setup: () => {
      throw new Error('never run: only the metadata is used');
    },
  });
  const packageName = options.packageName ?? `wm-plugin-${options.id}`;
  const pkg = {
    name: packageName,
    version,
    description: `worker-manager ${options.kind} plugin '${options.id}'.`,
    type: 'module',
    engines: { node: '>=20.19.0' },
    exports: { '.': './src/index.ts', './package.json': './package.json' },
    files: ['src', 'README.md'],
    scripts: {
      test: 'tsx --test test/*.test.ts',
      typecheck: 'tsc --noEmit',
      metadata: 'wm-plugin metadata',
      'metadata:check': 'wm-plugin metadata --check',
    },
    dependencies: { [sdk.name]: `^${sdk.version}` },
    devDependencies: { '@types/node': '^20.19.0', tsx: '^4.20.0', typescript: '^5.9.0' },
    workerManager: pluginMetadataOf(definition),
  };

  const files: Record<string, string> = {
    'package.json': formatPackageJson(pkg),
    ...scaffoldTemplates({ id: options.id, kind: options.kind, packageName, version, hostApi: definition.hostApi, sdk: sdk.name }),
  };
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(target, name)), { recursive: true });
    await writeFile(path.join(target, name), text, { flag: 'wx' });
  }
  return Object.keys(files);
}
