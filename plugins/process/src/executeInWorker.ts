import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { ExecutionResult } from '@worker-manager/plugin-sdk';
import { signalGroup } from './stopWorker.ts';

const EXEC = `mem=$1; shift
if [ -n "$mem" ]; then ulimit -v "$mem" || exit 126; fi
exec "$@"`;

/** What to run, and where. */
export interface ExecRequest {
  command: readonly string[];
  env: Record<string, string>;
  cwd: string;
  memoryKiB?: number;
  timeoutMs?: number;
  /** Cap for each of stdout and stderr. */
  maxBytes: number;
  signal: AbortSignal;
}

function collector(max: number): { push(b: Buffer): void; text(): string; truncated: boolean } {
  const parts: Buffer[] = [];
  let size = 0;
  const c = {
    truncated: false,
    push(b: Buffer): void {
      if (size >= max) {
        c.truncated = true;
        return;
      }
      const take = b.subarray(0, max - size);
      if (take.length < b.length) c.truncated = true;
      parts.push(take);
      size += take.length;
    },
    text: (): string => Buffer.concat(parts).toString('utf8'),
  };
  return c;
}

/**
 * Runs a command with the worker's environment, working directory and memory limit, in a process group of its own
 * so a timeout (or the caller giving up) kills everything it started. A command killed by a signal reports
 * 128 + the signal number, as a shell would.
 */
export function executeInWorker(req: ExecRequest): Promise<ExecutionResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', EXEC, 'wm-exec', req.memoryKiB === undefined ? '' : String(req.memoryKiB), ...req.command], {
      cwd: req.cwd,
      env: req.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collector(req.maxBytes);
    const err = collector(req.maxBytes);
    let timedOut = false;
    const kill = (): void => {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    };
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      kill();
    }, req.timeoutMs);
    req.signal.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal.removeEventListener('abort', kill);
      const exitCode = code ?? 128 + (signal === null ? 0 : constants.signals[signal]);
      const result: ExecutionResult = { exitCode, stdout: out.text(), stderr: err.text(), durationMs: performance.now() - started, timedOut };
      if (out.truncated || err.truncated) result.truncated = true;
      resolve(result);
    };
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal.removeEventListener('abort', kill);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      // Output is complete once both pipes close; a background process still holding them must not hold the call.
      const grace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, 200);
      child.on('close', () => {
        clearTimeout(grace);
        finish(code, signal);
      });
    });
  });
}
