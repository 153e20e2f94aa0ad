import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';

/** A running `docker exec`: its raw stream (multiplexed unless tty), and the exit code once it ends. */
export interface ExecSession {
  exec: Docker.Exec;
  stream: Duplex;
  stdout: PassThrough;
  stderr: PassThrough;
  /** Resolves with the exit code when the process has ended and its output has been read. */
  exitCode: Promise<number>;
}

/** Starts a command in a container with its stdio attached, as the kubelet's streaming exec does through the runtime. */
export async function startExec(
  docker: Docker,
  containerId: string,
  command: string[],
  options: { stdin: boolean; tty: boolean },
): Promise<ExecSession> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: command,
    AttachStdin: options.stdin,
    AttachStdout: true,
    AttachStderr: true,
    Tty: options.tty,
  });
  const stream = (await exec.start({ hijack: true, stdin: options.stdin, Tty: options.tty })) as Duplex;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (options.tty) stream.pipe(stdout);
  else docker.modem.demuxStream(stream, stdout, stderr);
  const exitCode = new Promise<number>((resolve, reject) => {
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      if (options.tty) stdout.end();
      else {
        stdout.end();
        stderr.end();
      }
      exec.inspect().then((info) => resolve(info.ExitCode ?? -1), reject);
    };
    stream.on('end', finish);
    stream.on('close', finish);
    stream.on('error', finish);
  });
  return { exec, stream, stdout, stderr, exitCode };
}

/** Runs a command to completion (probes, preStop hooks) within a deadline; on timeout the result says so. */
export async function execInContainer(
  docker: Docker,
  containerId: string,
  command: string[],
  timeoutMs: number,
): Promise<{ exitCode: number; output: string; timedOut: boolean }> {
  const session = await startExec(docker, containerId, command, { stdin: false, tty: false });
  const chunks: Buffer[] = [];
  session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  session.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const exitCode = await Promise.race([session.exitCode, timeout]);
    if (exitCode === 'timeout') {
      // Docker cannot kill an exec'd process; like the kubelet, stop waiting and count the probe as failed.
      session.stream.destroy();
      return { exitCode: -1, output: Buffer.concat(chunks).toString('utf8'), timedOut: true };
    }
    return { exitCode, output: Buffer.concat(chunks).toString('utf8'), timedOut: false };
  } finally {
    clearTimeout(timer);
  }
}

/** A non-TTY `docker logs` body without its 8-byte stream headers (stdout and stderr interleaved as written). */
export function demux(buffer: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts);
}
