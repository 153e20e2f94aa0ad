import { readFileSync } from 'node:fs';
import Docker from 'dockerode';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/**
 * A dockerode client for the configured engine: `host` (tcp:// or https:// with `tls`), else `socketPath`, else
 * `DOCKER_HOST` from the thread's environment (only what the host config grants), else /var/run/docker.sock.
 */
export function dockerClient(config: ResolvedConfig, env: NodeJS.ProcessEnv = process.env): Docker {
  const target = config.host ?? (config.socketPath === undefined ? env['DOCKER_HOST'] : undefined);
  if (target === undefined || target.startsWith('unix://')) {
    const socketPath = config.socketPath ?? (target === undefined ? '/var/run/docker.sock' : target.slice('unix://'.length));
    return new Docker({ socketPath });
  }
  let url: URL;
  try {
    url = new URL(target.includes('://') ? target : `tcp://${target}`);
  } catch (cause) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `docker provider: '${target}' is not an engine URL (tcp://host:port or https://host:port)`, { cause });
  }
  const https = url.protocol === 'https:' || config.tls.caFile !== undefined || env['DOCKER_TLS_VERIFY'] === '1';
  const read = (file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (cause) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `docker provider: cannot read TLS file ${file}`, { cause, details: { file } });
    }
  };
  const options: Docker.DockerOptions = { host: url.hostname, port: url.port === '' ? (https ? 2376 : 2375) : Number(url.port), protocol: https ? 'https' : 'http' };
  const ca = read(config.tls.caFile);
  const cert = read(config.tls.certFile);
  const key = read(config.tls.keyFile);
  if (ca !== undefined) options.ca = ca;
  if (cert !== undefined) options.cert = cert;
  if (key !== undefined) options.key = key;
  return new Docker(options);
}
