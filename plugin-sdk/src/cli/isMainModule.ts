import { realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function real(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/**
 * True when the module at `moduleUrl` is the script Node was started with. Both sides are compared after resolving
 * symlinks: npm installs a `bin` as a symlink in `node_modules/.bin`, and Node reports the main module's
 * `import.meta.url` by its real path while `process.argv[1]` keeps the link, so a plain comparison fails there and
 * the CLI would silently do nothing (and exit 0, passing a `--check` in CI).
 */
export function isMainModule(moduleUrl: string, argv1: string | undefined = process.argv[1]): boolean {
  if (argv1 === undefined) return false;
  return real(fileURLToPath(moduleUrl)) === real(argv1);
}
