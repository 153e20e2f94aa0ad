import { Writable } from 'node:stream';
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';
import { WorkerManagerError, type ExecutionResult } from '@worker-manager/plugin-sdk';
import { mapKubeError } from './kubeErrors.ts';
import { CONTAINER } from './names.ts';

/** Exit code reported for a command stopped at its timeout (as coreutils `timeout` does). */
export const TIMEOUT_EXIT_CODE = 124;

class Capped extends Writable {
  readonly chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  readonly max: number;
  constructor(max: number) {
    super();
    this.max = max;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const room = this.max - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.chunks.push(part);
      this.size += part.length;
    }
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The exit code in a `metav1.Status` of the exec status channel: Success is 0, Failure carries it in details.causes. */
export function exitCodeOfStatus(status: V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message === undefined ? Number.NaN : Number(cause.message);
  return Number.isInteger(code) ? code : undefined;
}

export interface ExecRequest {
  kubeConfig: KubeConfig;
  namespace: string;
  pod: string;
  workerId: string;
  command: string[];
  timeoutMs: number | undefined;
  maxBytes: number;
  signal: AbortSignal;
}

/**
 * Runs a command in the worker's container through the apiserver's exec subresource (client-node's `Exec`, WebSocket)
 * and takes the exit code from the status channel. Kubernetes has no call to stop an exec: at the timeout the
 * connection is closed and the result is `timedOut` with exit code 124; the process may outlive it in the container.
 */
export async function execInPod(req: ExecRequest): Promise<ExecutionResult> {
  const started = performance.now();
  const stdout = new Capped(req.maxBytes);
  const stderr = new Capped(req.maxBytes);
  return new Promise<ExecutionResult>((resolve, reject) => {
    let settled = false;
    let socket: { close(): void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    let status: V1Status | undefined;
    const finish = (result: ExecutionResult | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      socket?.close();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const result = (exitCode: number, timedOut: boolean): ExecutionResult => ({
      exitCode,
      stdout: stdout.text(),
      stderr: stderr.text(),
      durationMs: performance.now() - started,
      timedOut,
      ...(stdout.truncated || stderr.truncated ? { truncated: true } : {}),
    });
    const onAbort = (): void => finish(new WorkerManagerError('WM_ERR_TIMEOUT', 'executeCommand was cancelled', { details: { workerId: req.workerId } }));
    req.signal.addEventListener('abort', onAbort, { once: true });
    if (req.timeoutMs !== undefined) timer = setTimeout(() => finish(result(TIMEOUT_EXIT_CODE, true)), req.timeoutMs);
    new Exec(req.kubeConfig)
      .exec(req.namespace, req.pod, CONTAINER, req.command, stdout, stderr, null, false, (s) => {
        status = s;
      })
      .then(
        (ws) => {
          socket = ws;
          if (settled) ws.close();
          ws.on('close', () => {
            // The status frame comes before the close; without one, the stream broke.
            const code = status === undefined ? undefined : exitCodeOfStatus(status);
            if (code !== undefined) finish(result(code, false));
            else
              finish(
                new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `exec in worker '${req.workerId}' ended without an exit code${status?.message === undefined ? '' : `: ${status.message}`}`, {
                  details: { workerId: req.workerId, reason: status?.reason },
                }),
              );
          });
        },
        (error: unknown) => finish(mapKubeError(error, 'executeCommand', { workerId: req.workerId })),
      );
  });
}
