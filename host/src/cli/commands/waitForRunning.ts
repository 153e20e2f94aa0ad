import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import { WorkerStatus } from '../../api/apiSchemas.ts';
import { hostError } from '../../errors.ts';
import type { ApiClient } from '../client/ApiClient.ts';

/** A state as one short phrase: `Running`, `Failed (exit 1): reason`. */
export function describeState(state: WorkerState): string {
  const exit = 'exitCode' in state && state.exitCode !== undefined ? ` (exit ${state.exitCode})` : '';
  return `${state.phase}${exit}${state.phase === 'Failed' ? `: ${state.reason}` : ''}`;
}

/** Where progress goes: a TTY gets one line rewritten in place, anything else a line per change of phase. */
export interface Progress {
  update(text: string): void;
  done(text: string): void;
}

/** Progress on stderr. */
export function stderrProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let last = '';
  return {
    update(text) {
      if (tty) stream.write(`\r\x1b[K${text}`);
      else if (text.replace(/ [\d.]+ s$/, '') !== last.replace(/ [\d.]+ s$/, '')) stream.write(`${text}\n`);
      last = text;
    },
    done(text) {
      stream.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
    },
  };
}

/**
 * Polls `GET /v1/workers/{id}` until the worker is Running, with a short interval that grows to 1 s. A worker that
 * ends first (Failed, Terminated) is HOST_ERR_CLI_WORKER_NOT_RUNNING; running out of time is HOST_ERR_CLI_WAIT_TIMEOUT.
 */
export async function waitForRunning(client: ApiClient, workerId: string, options: { timeoutMs: number; progress: Progress; initial?: WorkerState }): Promise<WorkerState> {
  const started = Date.now();
  const seconds = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  let state = options.initial;
  let interval = 100;
  for (;;) {
    if (state !== undefined) {
      if (state.phase === 'Running') {
        options.progress.done(`worker ${workerId} is Running (${seconds()})`);
        return state;
      }
      if (state.phase === 'Failed' || state.phase === 'Terminated') {
        options.progress.done(`worker ${workerId} ended: ${describeState(state)}`);
        throw hostError('HOST_ERR_CLI_WORKER_NOT_RUNNING', `worker ${workerId} ended before it was Running: ${describeState(state)}`, { details: { workerId, phase: state.phase } });
      }
      options.progress.update(`waiting for worker ${workerId}: ${state.phase} ${seconds()}`);
    }
    if (Date.now() - started >= options.timeoutMs) {
      throw hostError('HOST_ERR_CLI_WAIT_TIMEOUT', `worker ${workerId} was not Running after ${options.timeoutMs} ms (last state ${state === undefined ? 'unknown' : describeState(state)})`, {
        details: { workerId },
      });
    }
    await sleep(interval);
    interval = Math.min(interval * 2, 1_000);
    state = (await client.request('GET', `/v1/workers/${encodeURIComponent(workerId)}`, { schema: WorkerStatus })).state;
  }
}
