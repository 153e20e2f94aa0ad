import type Docker from 'dockerode';
import { boundText, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { engineMessage } from './dockerErrors.ts';

/** The credential values of a registry auth config, which must never appear in a message. */
function secretValues(auth: Docker.AuthConfig | undefined): string[] {
  if (auth === undefined) return [];
  const a = auth as Record<string, unknown>;
  return ['password', 'identitytoken', 'registrytoken', 'auth'].map((k) => a[k]).filter((v): v is string => typeof v === 'string' && v.length >= 4);
}

/** `message` with any credential value of `auth` replaced, should an engine or registry ever echo one. */
export function withoutCredentials(message: string, auth: Docker.AuthConfig | undefined): string {
  return secretValues(auth).reduce((m, v) => m.split(v).join('***'), message);
}

/**
 * Pulls an image (the engine's `images/create`), following its progress stream to the end. The credentials go in
 * the X-Registry-Auth header only. Any failure (no registry, unknown image, denied, aborted) is one
 * `WM_ERR_PROVIDER_SPECIFIC` error with `details.reason` `ImagePullFailed` whose message names the image and the
 * engine's reason, never a credential.
 */
export async function pullImage(docker: Docker, image: string, workerId: string, auth: Docker.AuthConfig | undefined, signal?: AbortSignal): Promise<void> {
  try {
    const options: { authconfig?: Docker.AuthConfig; abortSignal?: AbortSignal } = {};
    if (auth !== undefined) options.authconfig = auth;
    if (signal !== undefined) options.abortSignal = signal;
    const stream = (await docker.pull(image, options)) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, output: Array<{ error?: string }>) => {
        const failed = output?.find((o) => o.error !== undefined);
        if (err !== null) reject(err);
        else if (failed !== undefined) reject(new Error(failed.error));
        else resolve();
      });
    });
  } catch (error) {
    // Credentials out first: a cut could leave half of one.
    throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `image '${boundText(image)}' could not be pulled: ${boundText(withoutCredentials(engineMessage(error), auth))}`, {
      details: { workerId, image, reason: 'ImagePullFailed' },
      transient: true,
    });
  }
}
