import { readFile } from 'node:fs/promises';
import type { V1Container, V1ContainerStateWaiting } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { demux } from './dockerExec.ts';

/**
 * The kubelet's image step (pkg/kubelet/images): undefined when the container can be created, else the waiting state
 * to report. `Never` with an absent image is ErrImageNeverPull; otherwise a pull is attempted (also for `Always` with
 * the image present, as the kubelet does), and a failed pull is ErrImagePull, then ImagePullBackOff on the retries.
 */
export async function checkImage(
  docker: Docker,
  image: string,
  pullPolicy: string,
  previousReason: string | undefined,
): Promise<V1ContainerStateWaiting | undefined> {
  const present = await docker.getImage(image).inspect().then(
    () => true,
    () => false,
  );
  if (present && pullPolicy !== 'Always') return undefined;
  if (pullPolicy === 'Never') return { reason: 'ErrImageNeverPull', message: `Container image "${image}" is not present with pull policy of Never` };
  const failure = await pull(docker, image);
  if (failure === undefined) return undefined;
  if (previousReason === 'ErrImagePull' || previousReason === 'ImagePullBackOff') {
    return { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` };
  }
  return { reason: 'ErrImagePull', message: failure };
}

/** Pulls an image (no registry is reachable here, so it fails as the kubelet's pull would); the error, or undefined. */
async function pull(docker: Docker, image: string): Promise<string | undefined> {
  try {
    const stream = await docker.pull(image);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (error: Error | null) => (error === null ? resolve() : reject(error)));
    });
    return undefined;
  } catch (error) {
    return `rpc error: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * The termination message of an exited container, as the kubelet reads it: the terminationMessagePath file (at most
 * 4096 bytes), or with FallbackToLogsOnError and a failure, the last 80 log lines (at most 2048 bytes).
 */
export async function terminationMessage(docker: Docker, spec: V1Container, containerId: string, file: string, exitCode: number): Promise<string> {
  const message = (await readFile(file).catch(() => Buffer.alloc(0))).subarray(0, 4096).toString('utf8');
  if (message !== '' || exitCode === 0 || spec.terminationMessagePolicy !== 'FallbackToLogsOnError') return message;
  const logs = (await docker
    .getContainer(containerId)
    .logs({ stdout: true, stderr: true, tail: 80 })
    .catch(() => Buffer.alloc(0))) as Buffer;
  const text = demux(logs).toString('utf8');
  return text.length > 2048 ? text.slice(-2048) : text;
}
