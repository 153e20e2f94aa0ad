import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { ExecutionResult } from '@worker-manager/plugin-sdk';
import { FrameDecoder } from './demux.ts';
import { mapDockerError } from './dockerErrors.ts';

/** What {@link execInContainer} needs. */
export interface ExecRequest {
  container: Docker.Container;
  workerId: string;
  command: string[];
  timeoutMs: number | undefined;
  maxBytes: number;
  signal: AbortSignal;
}

/** Exit code reported for a command stopped at its timeout (as coreutils `timeout` does). */
export const TIMEOUT_EXIT_CODE = 124;

/**
 * Runs a command in the container through the exec API and returns its exit code and demultiplexed output (each
 * stream capped at `maxBytes`). The engine has no call to stop an exec, so at the timeout the command's process is
 * killed by its host pid (works when the engine runs on this machine); the result is `timedOut` with exit code 124
 * either way. A paused or stopped container is the engine's 409, mapped to WM_ERR_CONFLICT.
 */
export async function execInContainer(req: ExecRequest): Promise<ExecutionResult> {
  const started = performance.now();
  let exec: Docker.Exec;
  let stream: Duplex;
  try {
    exec = await req.container.exec({ Cmd: req.command, AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false });
    stream = (await exec.start({ hijack: true, stdin: false, Detach: false, Tty: false })) as unknown as Duplex;
  } catch (error) {
    throw mapDockerError(error, 'executeCommand', { workerId: req.workerId });
  }
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const size = { stdout: 0, stderr: 0 };
  let truncated = false;
  const decoder = new FrameDecoder();
  stream.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      const room = req.maxBytes - size[f.stream];
      if (room <= 0) {
        truncated = true;
        continue;
      }
      const part = f.payload.length > room ? f.payload.subarray(0, room) : f.payload;
      if (part.length < f.payload.length) truncated = true;
      out[f.stream].push(Buffer.from(part));
      size[f.stream] += part.length;
    }
  });
  const ended = new Promise<'ended'>((resolve) => {
    stream.once('end', () => resolve('ended'));
    stream.once('close', () => resolve('ended'));
    stream.once('error', () => resolve('ended'));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    if (req.timeoutMs !== undefined) timer = setTimeout(() => resolve('timeout'), req.timeoutMs);
  });
  const aborted = new Promise<'timeout'>((resolve) => {
    if (req.signal.aborted) resolve('timeout');
    else req.signal.addEventListener('abort', () => resolve('timeout'), { once: true });
  });
  const outcome = await Promise.race([ended, timeout, aborted]);
  clearTimeout(timer);
  const text = (s: 'stdout' | 'stderr'): string => Buffer.concat(out[s]).toString('utf8');
  if (outcome === 'timeout') {
    stream.destroy();
    await killExec(exec);
    const r: ExecutionResult = { exitCode: TIMEOUT_EXIT_CODE, stdout: text('stdout'), stderr: text('stderr'), durationMs: performance.now() - started, timedOut: true };
    if (truncated) r.truncated = true;
    return r;
  }
  let exitCode = -1;
  try {
    // The stream can end a moment before the engine records the exit code.
    for (let i = 0; i < 50; i++) {
      const info = await exec.inspect();
      if (info.Running !== true && info.ExitCode !== null && info.ExitCode !== undefined) {
        exitCode = info.ExitCode;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } catch (error) {
    throw mapDockerError(error, 'executeCommand', { workerId: req.workerId });
  }
  const r: ExecutionResult = { exitCode, stdout: text('stdout'), stderr: text('stderr'), durationMs: performance.now() - started, timedOut: false };
  if (truncated) r.truncated = true;
  return r;
}

async function killExec(exec: Docker.Exec): Promise<void> {
  try {
    const info = await exec.inspect();
    if (info.Running === true && typeof info.Pid === 'number' && info.Pid > 0) process.kill(info.Pid, 'SIGKILL');
  } catch {
    // a remote engine, or the command ended meanwhile: nothing more can be done
  }
}
