import Docker from 'dockerode';

/** What the double runs for one container of a container group. */
export interface ContainerRun {
  /** Names the Docker container, so a test can find (and break) it. */
  name: string;
  image: string;
  command: string[] | undefined;
  env: Record<string, string>;
  cpu: number;
  memoryInGB: number;
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  /** Labels of the Docker container (the double's own, for cleanup). */
  labels: Record<string, string>;
}

/** A Docker container's state, as the double turns it into an ACI instance view. */
export interface ContainerFacts {
  status: string;
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  restartCount: number;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

const isNotFound = (error: unknown): boolean => (error as { statusCode?: number }).statusCode === 404;

/**
 * The Docker side of the ACI double: each container of a container group is a real container, so states, exit codes,
 * restarts and logs are what a real process did. Images come from the local store only (no registry is reachable);
 * a missing image is the double's "image pull failed".
 */
export class ContainerRuntime {
  readonly docker: Docker;

  constructor(docker = new Docker({ socketPath: '/var/run/docker.sock' })) {
    this.docker = docker;
  }

  async hasImage(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Creates and starts the container; returns its id. */
  async run(spec: ContainerRun): Promise<string> {
    const restart = spec.restartPolicy === 'Always' ? 'always' : spec.restartPolicy === 'OnFailure' ? 'on-failure' : 'no';
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      // ACI's `command` replaces the image's entrypoint (exec form), as `docker run --entrypoint` does.
      ...(spec.command === undefined ? {} : { Entrypoint: spec.command, Cmd: [] }),
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      HostConfig: {
        NanoCpus: Math.round(spec.cpu * 1e9),
        Memory: Math.round(spec.memoryInGB * 1024 ** 3),
        RestartPolicy: { Name: restart },
      },
    });
    await container.start();
    return container.id;
  }

  async inspect(id: string): Promise<ContainerFacts | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const s = info.State;
      return {
        status: s.Status,
        running: s.Running,
        exitCode: s.ExitCode,
        oomKilled: s.OOMKilled,
        startedAt: s.StartedAt === ZERO_TIME ? undefined : s.StartedAt,
        finishedAt: s.FinishedAt === ZERO_TIME ? undefined : s.FinishedAt,
        restartCount: info.RestartCount,
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async restart(id: string): Promise<void> {
    await this.docker.getContainer(id).restart({ t: 1 });
  }

  async stop(id: string): Promise<void> {
    await this.docker.getContainer(id).kill().catch((error: unknown) => {
      if (!isNotFound(error) && (error as { statusCode?: number }).statusCode !== 409) throw error;
    });
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start().catch((error: unknown) => {
      if ((error as { statusCode?: number }).statusCode !== 304) throw error;
    });
  }

  async remove(id: string): Promise<void> {
    await this.docker.getContainer(id).remove({ force: true, v: true }).catch((error: unknown) => {
      if (!isNotFound(error) && (error as { statusCode?: number }).statusCode !== 409) throw error;
    });
  }

  /** stdout and stderr as one text, in the order written, like ACI's log API (which does not tell them apart). */
  async logs(id: string, tail: number | undefined, timestamps: boolean): Promise<string> {
    const raw = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, timestamps, ...(tail === undefined ? {} : { tail }) })) as unknown as Buffer;
    return demux(raw).toString('utf8');
  }

  /** Removes every container carrying `label=value`. */
  async removeLabelled(label: string, value: string): Promise<void> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
    await Promise.all(list.map((c) => this.remove(c.Id)));
  }
}

/** Strips Docker's 8-byte stream headers from a non-TTY log buffer, keeping the frames in order. */
function demux(buffer: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts);
}
