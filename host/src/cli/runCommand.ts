import { WorkerManagerError, type WorkerState } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../config/loadConfig.ts';
import { Host } from '../Host.ts';
import type { LogLevel } from '../observability/logger.ts';
import { reportError } from './serveCommand.ts';

/** Exit code of a command ended by a signal, as shells report it. */
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * `wm run -- cmd args`: boots the host, creates one worker, follows its logs until it ends, terminates it and stops
 * the host. The exit code is the worker's. It is the smallest end-to-end use of the whole kernel.
 *
 * Ctrl-C (SIGINT) or SIGTERM terminates the worker and stops the host before exiting with 130 / 143: a worker runs in
 * its own process group, so the terminal's signal never reaches it, and it would otherwise outlive the command. A
 * second signal exits at once.
 */
export async function runCommand(configFile: string, command: string[], opts: { provider?: string; timeout?: number; logLevel?: LogLevel }): Promise<number> {
  let host: Host | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let stopFollowing: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted !== undefined) process.exit(SIGNAL_EXIT[signal] ?? 1);
    interrupted = signal;
    process.stderr.write(`received ${signal}: terminating the worker (again to exit at once)\n`);
    stopFollowing?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const loaded = await loadConfig(configFile);
    if (opts.logLevel !== undefined) loaded.config.host.logLevel = opts.logLevel;
    host = new Host({ loaded });
    await host.start();
    const [program, ...args] = command;
    if (program === undefined) throw new WorkerManagerError('WM_ERR_VALIDATION', 'no command given');
    if (interrupted !== undefined) return SIGNAL_EXIT[interrupted] ?? 1;
    const spec = { command: [program], ...(args.length > 0 ? { args } : {}), ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }) };
    const { instance, worker } = await host.workers.createWorker({ spec, ...(opts.provider === undefined ? {} : { provider: opts.provider }) });
    process.stderr.write(`worker ${worker.workerId} running on ${instance}\n`);
    const logs = await host.workers.getLogs(worker.workerId, { follow: true });
    stopFollowing = () => logs.cancel();
    if (interrupted === undefined) {
      for await (const chunk of logs) (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data);
    }
    if (interrupted !== undefined) {
      const { state } = await host.workers.terminateWorker(worker.workerId);
      process.stderr.write(`worker ${worker.workerId} ${state.phase} (interrupted by ${interrupted})\n`);
      return SIGNAL_EXIT[interrupted] ?? 1;
    }
    const state: WorkerState = (await host.workers.getStatus(worker.workerId)).state;
    await host.workers.terminateWorker(worker.workerId);
    process.stderr.write(`worker ${worker.workerId} ${state.phase}${'exitCode' in state && state.exitCode !== undefined ? ` (exit code ${state.exitCode})` : ''}${state.phase === 'Failed' ? `: ${state.reason}` : ''}\n`);
    return 'exitCode' in state && state.exitCode !== undefined ? state.exitCode : state.phase === 'Terminated' ? 0 : 1;
  } catch (error) {
    return reportError(error);
  } finally {
    await host?.stop().catch(reportError);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
