import { realpath, stat } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { extname, isAbsolute, relative, sep } from 'node:path';
import type { OnResolveArgs, OnResolveResult, Plugin, PluginBuild } from 'esbuild';

/** esbuild name of the plugin {@link packageBoundaryPlugin} returns; esbuild prints it before each refusal. */
export const BOUNDARY_PLUGIN_NAME = 'wm-package-boundary';

/** Every refusal's text starts with this. {@link isBoundaryRefusal} tells a refused build from a broken one. */
export const BOUNDARY_REFUSAL_PREFIX = 'plugin package boundary:';

/** Options of {@link packageBoundaryPlugin}. */
export interface PackageBoundaryOptions {
  /** The plugin package; its files may be bundled. */
  packageDir: string;
  /**
   * Other folders whose files may be bundled: the SDK package and the node_modules folders the plugin's dependencies
   * (and the SDK's) resolve from. Imports from files in these folders are checked like the plugin's own.
   */
  allowedRoots: readonly string[];
  /**
   * Entry points the host puts in the same build (the thread entry). They, and the files they reach outside the
   * package and `allowedRoots`, are host code: their imports are resolved but not checked. Any other entry point is
   * checked like an import.
   */
  hostEntries?: readonly string[];
}

/** The extensions esbuild loads as code (or JSON) by default: anything else would be inlined as data or copied. */
const CODE_EXTENSIONS: ReadonlySet<string> = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.tsx', '.jsx', '.json']);

/** Marks the guard's own `build.resolve`, which runs every onResolve callback again, including the guard's. */
const REENTRY = Symbol('wm-package-boundary-reentry');

const isInside = (root: string, path: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);

/** Real paths of the roots; one that does not exist holds no file and is dropped. */
async function realRoots(paths: readonly string[]): Promise<string[]> {
  const real = await Promise.all(paths.map((p) => realpath(p).catch(() => undefined)));
  return real.filter((p): p is string => p !== undefined);
}

/** Why the import attributes are refused, or undefined. Only JSON is data esbuild may inline: it is parsed, not copied. */
function attributeRefusal(attributes: Readonly<Record<string, string>>): string | undefined {
  const entries = Object.entries(attributes);
  if (entries.length === 0) return undefined;
  if (entries.length === 1 && entries[0]?.[0] === 'type' && entries[0][1] === 'json') return undefined;
  return `import attributes ${JSON.stringify(attributes)} would inline the file as data; only { type: 'json' } is allowed`;
}

/**
 * An esbuild plugin that keeps a restricted plugin's bundle to code from its own package and the allowed folders.
 * The bundle is built in the trusted main thread, so esbuild can read any file the host can; without this, an
 * `import x from '/proc/self/environ' with { type: 'text' }` or an import of the credential store's key file would be
 * inlined into the bundle the sandbox then runs.
 *
 * For every import it refuses, as an esbuild error starting with {@link BOUNDARY_REFUSAL_PREFIX} and naming the
 * import, the importer and the reason:
 * - import attributes other than `{ type: 'json' }` (`text`, `file`, `binary`, `base64`, `dataurl`, `copy`, a `loader`);
 * - a file whose real path (symlinks resolved) is neither in the package nor in one of `allowedRoots`;
 * - a file whose extension is not .js .mjs .cjs .ts .mts .cts .tsx .jsx .json, or that is not a regular file;
 * - a module that is no file (a `data:` import or another plugin's virtual module).
 * Node built-ins pass; a path esbuild marks external is left to the sandbox's own view of the file system.
 * A resolved file is handed to esbuild by its real path, so the file checked is the file loaded.
 *
 * It also stops esbuild from reading the package's tsconfig.json, unless the build names `tsconfig` or `tsconfigRaw`:
 * its `extends` may name any file, and esbuild quotes a file it cannot parse in the error.
 *
 * esbuild still reads package.json files while resolving, before this plugin sees the result: build from the copy
 * `copyPluginPackage` makes, which holds no symlink. Map a refused build to `HOST_ERR_PLUGIN_PACKAGE_UNSAFE`
 * with {@link isBoundaryRefusal}.
 */
export function packageBoundaryPlugin(options: PackageBoundaryOptions): Plugin {
  return {
    name: BOUNDARY_PLUGIN_NAME,
    setup(build: PluginBuild) {
      if (build.initialOptions.tsconfig === undefined && build.initialOptions.tsconfigRaw === undefined) build.initialOptions.tsconfigRaw = {};
      const ready = Promise.all([
        realpath(options.packageDir),
        realRoots(options.allowedRoots),
        realRoots(options.hostEntries ?? []),
      ]).then(([packageRoot, allowed, hostEntries]) => ({ packageRoot, roots: [packageRoot, ...allowed], hostEntries: new Set(hostEntries) }));
      // Files reached from a host entry through host files only; what they import is host code's business.
      const hostFiles = new Set<string>();

      build.onResolve({ filter: /.*/ }, async (args: OnResolveArgs): Promise<OnResolveResult | undefined> => {
        if (args.pluginData === REENTRY) return undefined;
        const { packageRoot, roots, hostEntries } = await ready;
        const fromHost = args.kind !== 'entry-point' && args.namespace === 'file' && hostFiles.has(args.importer);
        const importer = args.kind === 'entry-point' ? 'the build entry points' : displayPath(packageRoot, args.importer);
        const refuse = (reason: string): OnResolveResult => ({
          errors: [{ text: `${BOUNDARY_REFUSAL_PREFIX} import '${args.path}' in ${importer} refused: ${reason}` }],
        });

        if (!fromHost) {
          const attributes = attributeRefusal(args.with);
          if (attributes !== undefined) return refuse(attributes);
          if (args.kind !== 'entry-point' && isBuiltin(args.path)) return undefined;
        }

        const result = await build.resolve(args.path, {
          kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, namespace: args.namespace, with: args.with, pluginData: REENTRY,
        });
        if (result.errors.length > 0) return { errors: result.errors, warnings: result.warnings };
        if (result.external) return { path: result.path, external: true, sideEffects: result.sideEffects, warnings: result.warnings };
        if (result.namespace !== 'file') {
          if (!fromHost) return refuse(`it resolves to no file on disk (namespace '${result.namespace}')`);
          return { path: result.path, namespace: result.namespace, suffix: result.suffix, sideEffects: result.sideEffects, pluginData: result.pluginData, warnings: result.warnings };
        }

        let real: string;
        try {
          real = await realpath(result.path);
        } catch (error) {
          return refuse(`its real path cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
        }
        const trusted = fromHost || (args.kind === 'entry-point' && hostEntries.has(real));
        if (trusted) {
          if (!roots.some((root) => isInside(root, real))) hostFiles.add(real);
        } else {
          if (!roots.some((root) => isInside(root, real))) {
            const shown = result.path === real ? real : `${result.path}, really ${real}`;
            return refuse(`it resolves to ${shown}, outside the plugin package and the allowed folders`);
          }
          if (!CODE_EXTENSIONS.has(extname(real))) {
            return refuse(`it resolves to ${displayPath(packageRoot, real)}, whose extension '${extname(real)}' is not code (${[...CODE_EXTENSIONS].join(' ')})`);
          }
          // A fifo or a device would hang the host's build or feed it endless data.
          if (!(await stat(real)).isFile()) return refuse(`it resolves to ${displayPath(packageRoot, real)}, which is not a regular file`);
        }
        return { path: real, namespace: 'file', suffix: result.suffix, sideEffects: result.sideEffects, pluginData: result.pluginData, warnings: result.warnings };
      });
    },
  };
}

/** A path inside the package relative to it (as the plugin author wrote it), any other path absolute. */
function displayPath(packageRoot: string, path: string): string {
  if (!isAbsolute(path) || !isInside(packageRoot, path)) return path;
  return relative(packageRoot, path) || '.';
}

/**
 * Whether an error thrown by esbuild's `build()` holds at least one refusal of {@link packageBoundaryPlugin}, so the
 * caller raises `HOST_ERR_PLUGIN_PACKAGE_UNSAFE` rather than a load failure. Reads esbuild's structured messages, not
 * the error text, which a plugin partly writes (a module name it could not resolve).
 */
export function isBoundaryRefusal(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { errors } = error as { errors?: unknown };
  if (!Array.isArray(errors)) return false;
  return errors.some((message: unknown) => {
    if (typeof message !== 'object' || message === null) return false;
    const { pluginName, text } = message as { pluginName?: unknown; text?: unknown };
    return pluginName === BOUNDARY_PLUGIN_NAME && typeof text === 'string' && text.startsWith(BOUNDARY_REFUSAL_PREFIX);
  });
}
