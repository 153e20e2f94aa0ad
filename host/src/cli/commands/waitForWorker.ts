import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import type { Static } from 'typebox';
import { WorkerStatus } from '../../api/apiSchemas.ts';
import { hostError } from '../../errors.ts';
import type { ApiClient } from '../client/ApiClient.ts';

/** A state as one short phrase: `Running`, `Failed (exit 1): reason`. */
export function describeState(state: WorkerState): string {
  const exit = 'exitCode' in state && state.exitCode !== undefined ? ` (exit ${state.exitCode})` : '';
  const pending = state.phase === 'Starting' && state.pendingReason !== undefined ? ` (${state.pendingReason})` : '';
  return `${state.phase}${exit}${pending}${state.phase === 'Failed' ? `: ${state.reason}` : ''}`;
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

/** A worker as `GET /v1/workers/{id}` (and a create) answers it. */
export type Seen = Static<typeof WorkerStatus>;

/** What `wm workers create` waits for: the worker running (or already ended), or its end. */
export type WaitUntil = 'running' | 'exit';

const RUNNING = new Set(['Running', 'Degraded', 'Recovering', 'Paused']);

/** True once a ledger phase (or, from an older answer, a contract phase) satisfies `until`. */
export function waitIsOver(phase: string, until: WaitUntil): boolean {
  return phase === 'Terminated' || phase === 'Failed' || (until === 'running' && RUNNING.has(phase));
}

/**
 * Polls `GET /v1/workers/{id}` until the worker satisfies `until` (see {@link waitIsOver}), with a short interval that
 * grows to 1 s, and returns its state: the caller reports an end truthfully (a job that exited 0 before it was seen
 * running succeeded). Running out of time is HOST_ERR_CLI_WAIT_TIMEOUT.
 */
export async function waitForWorker(
  client: ApiClient,
  workerId: string,
  options: { until: WaitUntil; timeoutMs: number; progress: Progress; initial?: Seen },
): Promise<Seen> {
  const started = Date.now();
  const seconds = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  let seen = options.initial;
  let interval = 100;
  for (;;) {
    if (seen !== undefined) {
      const { state, phase } = seen;
      if (waitIsOver(phase, options.until)) {
        options.progress.done(state.phase === 'Terminated' || state.phase === 'Failed' ? `worker ${workerId} ended: ${describeState(state)}` : `worker ${workerId} is ${phase} (${seconds()})`);
        return seen;
      }
      const pending = state.phase === 'Starting' && state.pendingReason !== undefined ? ` (${state.pendingReason})` : '';
      options.progress.update(`waiting for worker ${workerId}: ${phase}${pending} ${seconds()}`);
    }
    if (Date.now() - started >= options.timeoutMs) {
      const wanted = options.until === 'running' ? 'Running' : 'ended';
      throw hostError('HOST_ERR_CLI_WAIT_TIMEOUT', `worker ${workerId} was not ${wanted} after ${options.timeoutMs} ms (last state ${seen === undefined ? 'unknown' : describeState(seen.state)})`, {
        details: { workerId },
      });
    }
    await sleep(interval);
    interval = Math.min(interval * 2, 1_000);
    seen = await client.request('GET', `/v1/workers/${encodeURIComponent(workerId)}`, { schema: WorkerStatus });
  }
}

/**
 * The exit code of `wm workers create` for the state its wait ended on: 0 for a running worker; the worker's own exit
 * code when it ended with one (so `wm workers create -- sh -c 'exit 4'` exits 4, and a job that exited 0 succeeded);
 * undefined for an end without one (Failed before it ran: the caller reports HOST_ERR_CLI_WORKER_NOT_RUNNING).
 */
export function exitCodeOfWorker(state: WorkerState): number | undefined {
  if (state.phase === 'Terminated') return processExitCode(state.exitCode ?? 0);
  if (state.phase === 'Failed') return state.exitCode === undefined ? undefined : processExitCode(state.exitCode);
  return 0;
}

/** A worker's (or a command's) exit code as a process exit code: 0-255; anything else (a signal's negative code) reads as 1. */
export function processExitCode(code: number): number {
  return Number.isInteger(code) && code >= 0 && code <= 255 ? code : 1;
}
