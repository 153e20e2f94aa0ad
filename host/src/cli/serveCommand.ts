import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../config/loadConfig.ts';
import { Host } from '../Host.ts';
import { formatReport } from '../plugins/formatReport.ts';

/** Prints a coded error and returns the exit code for it. */
export function reportError(error: unknown): number {
  if (isWorkerManagerError(error)) {
    process.stderr.write(`wm: [${error.code}] ${error.message}\n`);
    return error.category === 'Configuration' ? 2 : 1;
  }
  process.stderr.write(`wm: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  return 1;
}

/** Where the API is and what to try next, after the startup report; nothing when the API is off. */
function apiLines(host: Host): string {
  if (host.apiUrl === undefined) return '';
  const token = host.adminTokenFile === undefined ? 'OIDC bearer tokens' : `the local admin token in ${host.adminTokenFile} (mode 0600, new at each start)`;
  return `API: ${host.apiUrl} (authentication: ${token})\nTry, from this folder in another terminal: npx wm workers create -- sh -c 'echo hello; sleep 30' && npx wm workers list\n`;
}

/** `wm serve`: run until a signal arrives, then drain and stop. */
export async function serveCommand(configFile: string): Promise<number> {
  // Listening before anything is printed: a supervisor that sends SIGTERM the moment it reads the start line (or
  // during start-up) must get a clean stop, not the default action, a kill, in the instant before a late listener.
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Signal listeners do not keep Node alive and plugin threads are unref'd, so without a handle of its own the
  // process would exit as soon as start-up work drains.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    let host: Host;
    try {
      host = new Host({ loaded: await loadConfig(configFile) });
      const report = await host.start();
      process.stdout.write(`worker-manager host '${host.hostId}' started (bus: ${host.bus.adapter})\n${formatReport(report)}\n${apiLines(host)}`);
    } catch (error) {
      return reportError(error);
    }
    const signal = await stopRequested;
    process.stdout.write(`received ${signal}, stopping\n`);
    try {
      await host.stop();
      return 0;
    } catch (error) {
      return reportError(error);
    }
  } finally {
    clearInterval(keepAlive);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
