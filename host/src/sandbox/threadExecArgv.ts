/**
 * The flag that turns Node's permission model on: `--permission` from Node 22.13 (and 23.5), the experimental
 * spelling before. Detected from the version, because an unknown flag kills the thread at start with no error event.
 */
export function permissionFlag(nodeVersion: string = process.versions.node): '--permission' | '--experimental-permission' {
  const [major = 0, minor = 0] = nodeVersion.split('.').map(Number);
  const stable = major > 23 || (major === 23 && minor >= 5) || (major === 22 && minor >= 13);
  return stable ? '--permission' : '--experimental-permission';
}

/**
 * The execArgv of a restricted-tier plugin thread: the permission model with read access to `readable` folders only,
 * and write access to `writable` ones (out of process, the instance's own state folder; in process, none).
 * No `--allow-fs-write`, `--allow-child-process`, `--allow-worker` or `--allow-addons`: a thread allowed to start a
 * worker could start an unrestricted one.
 *
 * Nothing is inherited from the host's execArgv, on purpose:
 * - its tsx loader flags cannot work here: tsx transforms TypeScript with esbuild, which needs a worker thread or a
 *   child process, and both are denied. Restricted threads run a prebuilt JavaScript bundle instead
 *   (restrictedBundle.ts);
 * - any grant the host runs with (`--allow-child-process`) must not reach the plugin;
 * - Node 24's test runner hands its processes every option expanded, and several of them are refused in a worker's
 *   execArgv (ERR_WORKER_INVALID_EXEC_ARGV).
 */
export function restrictedExecArgv(readable: readonly string[], nodeVersion: string = process.versions.node, writable: readonly string[] = []): string[] {
  const flag = permissionFlag(nodeVersion);
  const out: string[] = [flag];
  const glob = (dir: string): string => `${dir.endsWith('/') ? dir : `${dir}/`}*`;
  for (const dir of readable) out.push(`--allow-fs-read=${glob(dir)}`);
  for (const dir of writable) out.push(`--allow-fs-write=${glob(dir)}`);
  // Node 20 prints an ExperimentalWarning per restricted thread; it says nothing an operator can act on.
  if (flag === '--experimental-permission') out.push('--disable-warning=ExperimentalWarning');
  return out;
}
