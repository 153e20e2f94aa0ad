import { WorkerManagerError, type WorkerState } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../config/loadConfig.ts';
import { Host } from '../Host.ts';
import type { LogLevel } from '../observability/logger.ts';
import { reportError } from './serveCommand.ts';

/**
 * `wm run -- cmd args`: boots the host, creates one worker, follows its logs until it ends, terminates it and stops
 * the host. The exit code is the worker's. It is the smallest end-to-end use of the whole kernel.
 */
export async function runCommand(configFile: string, command: string[], opts: { provider?: string; timeout?: number; logLevel?: LogLevel }): Promise<number> {
  let host: Host | undefined;
  try {
    const loaded = await loadConfig(configFile);
    if (opts.logLevel !== undefined) loaded.config.host.logLevel = opts.logLevel;
    host = new Host({ loaded });
    await host.start();
    const [program, ...args] = command;
    if (program === undefined) throw new WorkerManagerError('WM_ERR_VALIDATION', 'no command given');
    const spec = { command: [program], ...(args.length > 0 ? { args } : {}), ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }) };
    const { instance, worker } = await host.workers.createWorker({ spec, ...(opts.provider === undefined ? {} : { provider: opts.provider }) });
    process.stderr.write(`worker ${worker.workerId} running on ${instance}\n`);
    const logs = await host.workers.getLogs(worker.workerId, { follow: true });
    for await (const chunk of logs) (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data);
    const state: WorkerState = (await host.workers.getStatus(worker.workerId)).state;
    await host.workers.terminateWorker(worker.workerId);
    process.stderr.write(`worker ${worker.workerId} ${state.phase}${'exitCode' in state && state.exitCode !== undefined ? ` (exit code ${state.exitCode})` : ''}${state.phase === 'Failed' ? `: ${state.reason}` : ''}\n`);
    return 'exitCode' in state && state.exitCode !== undefined ? state.exitCode : state.phase === 'Terminated' ? 0 : 1;
  } catch (error) {
    return reportError(error);
  } finally {
    await host?.stop().catch(reportError);
  }
}
