/**
 * The Docker side of the ECS double: each task's container runs as a real Docker container, so states, exit codes and
 * output are real behaviour. Every container carries the double's label, so a test (or the double's close) can remove
 * all of them.
 */
import Docker from 'dockerode';

/** Label every container of an ECS double carries; its value is the double's id. */
export const ECS_DOUBLE_LABEL = 'wm-test/aws-ecs-double';

/** What the double asks Docker to run for one task. */
export interface ContainerPlan {
  image: string;
  entryPoint?: string[];
  command?: string[];
  env: Record<string, string>;
  workingDirectory?: string;
  user?: string;
  readonlyRootFilesystem?: boolean;
  memoryMiB?: number;
  cpuUnits?: number;
  init: boolean;
  stopTimeoutSeconds: number;
  labels: Record<string, string>;
}

/** How a container ended. */
export interface ContainerExit {
  exitCode: number;
  oomKilled: boolean;
}

/** One output line as the awslogs driver would have sent it. */
export interface LogLine {
  timestamp: number;
  message: string;
}

export function dockerClient(): Docker {
  const socketPath = process.env['DOCKER_HOST']?.startsWith('unix://') === true ? process.env['DOCKER_HOST'].slice(7) : '/var/run/docker.sock';
  return new Docker({ socketPath });
}

/** True when the engine has the image (no registry is reachable here, so an absent image cannot be pulled). */
export async function hasImage(docker: Docker, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch {
    return false;
  }
}

export async function createContainer(docker: Docker, plan: ContainerPlan): Promise<Docker.Container> {
  return docker.createContainer({
    Image: plan.image,
    ...(plan.entryPoint === undefined ? {} : { Entrypoint: plan.entryPoint }),
    ...(plan.command === undefined ? {} : { Cmd: plan.command }),
    Env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
    ...(plan.workingDirectory === undefined ? {} : { WorkingDir: plan.workingDirectory }),
    ...(plan.user === undefined ? {} : { User: plan.user }),
    Labels: plan.labels,
    StopTimeout: plan.stopTimeoutSeconds,
    HostConfig: {
      Init: plan.init,
      ReadonlyRootfs: plan.readonlyRootFilesystem === true,
      // Tasks of the double need no network; 'none' also spares the engine an address per task.
      NetworkMode: 'none',
      ...(plan.memoryMiB === undefined ? {} : { Memory: plan.memoryMiB * 1024 * 1024 }),
      ...(plan.cpuUnits === undefined ? {} : { NanoCpus: Math.round((plan.cpuUnits / 1024) * 1e9) }),
    },
  });
}

/** Waits for the container to exit and reads how it ended. */
export async function awaitExit(container: Docker.Container): Promise<ContainerExit> {
  const r = (await container.wait()) as { StatusCode?: number };
  const info = await container.inspect().catch(() => undefined);
  return { exitCode: r.StatusCode ?? info?.State.ExitCode ?? -1, oomKilled: info?.State.OOMKilled === true };
}

/** Splits Docker's multiplexed log stream (8-byte frame headers, as for a container without a TTY) into its payload. */
function demux(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(at + 4);
    parts.push(buffer.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * The container's output as awslogs events: stdout and stderr in one stream, one event per line, with Docker's own
 * timestamp of the line.
 */
export async function readLines(container: Docker.Container): Promise<LogLine[]> {
  const raw = (await container.logs({ stdout: true, stderr: true, timestamps: true, follow: false })) as unknown as Buffer;
  const text = demux(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    const stamp = Date.parse(line.slice(0, space));
    out.push({ timestamp: Number.isFinite(stamp) ? stamp : Date.now(), message: line.slice(space + 1) });
  }
  return out;
}

/** Removes every container of the double `id` (or of every double, without it). */
export async function removeDoubleContainers(docker: Docker, id?: string): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [id === undefined ? ECS_DOUBLE_LABEL : `${ECS_DOUBLE_LABEL}=${id}`] } });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}
