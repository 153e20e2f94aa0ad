import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { subjectsFor } from '../bus/subjects.ts';
import type { HostConfig } from '../config/schema.ts';
import { hostError } from '../errors.ts';
import { metricsNeedAuthentication } from '../security/authn/createAuthenticator.ts';
import { createApiServer, type ApiServerOptions } from './createApiServer.ts';

/** A listening API server and how to stop it. */
export interface RunningApiServer {
  app: FastifyInstance;
  /** `http://host:port` actually bound (the port is the real one when the config said 0). */
  url: string;
  /** Stops taking requests, waits up to `timeoutMs` for those in flight, then drops the connections left. */
  close(timeoutMs: number): Promise<void>;
}

/** Instances `/readyz` requires besides the default provider: those of plugins whose boot failure aborts the host. */
export function requiredInstances(config: HostConfig): string[] {
  const aborting = new Set(config.plugins.filter((p) => p.onBootFailure === 'abort').map((p) => p.name));
  return config.instances.filter((i) => aborting.has(i.plugin)).map((i) => i.name);
}

/** How a message may show a config value: `LoadedConfig.show` (its `${...}` source when it came from the environment). */
export type ShowConfigValue = (pointer: string, value: string) => string;

/**
 * Builds the API from the host config's `api` block and listens; a bind failure is HOST_ERR_API_LISTEN_FAILED. With
 * `services.auth`, `/metrics` needs a token unless `security.authentication.protectMetrics` (or `auth.protectMetrics`)
 * says otherwise or the API listens on loopback (metricsNeedAuthentication).
 */
export async function startApiServer(
  config: HostConfig,
  services: Omit<ApiServerOptions, 'bodyLimitBytes' | 'requiredInstances'>,
  show: ShowConfigValue = (_pointer, value) => value,
): Promise<RunningApiServer> {
  const auth = services.auth === undefined
    ? undefined
    : { ...services.auth, protectMetrics: services.auth.protectMetrics ?? metricsNeedAuthentication(config.api.host, config.security.authentication) };
  const app = createApiServer({
    subjects: subjectsFor(config.bus.subjectPrefix), ...services, ...(auth === undefined ? {} : { auth }),
    bodyLimitBytes: config.api.bodyLimitBytes, requiredInstances: requiredInstances(config),
  });
  try {
    await app.listen({ host: config.api.host, port: config.api.port });
  } catch (error) {
    await app.close().catch(() => undefined);
    const host = show('/api/host', config.api.host);
    const port = show('/api/port', String(config.api.port));
    // Node's message quotes the address (getaddrinfo ENOTFOUND <host>): only its code is given for one from the environment.
    const hidden = host !== config.api.host || port !== String(config.api.port);
    const reason = error instanceof Error ? (hidden ? (error as NodeJS.ErrnoException).code ?? error.name : error.message) : String(error);
    throw hostError('HOST_ERR_API_LISTEN_FAILED', `the API cannot listen on ${host}:${port}: ${reason}`, {
      ...(hidden ? {} : { cause: error }),
      details: { host, port: port === String(config.api.port) ? config.api.port : port },
    });
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    app,
    url: `http://${host}:${address.port}`,
    async close(timeoutMs) {
      const timer = setTimeout(() => app.server.closeAllConnections(), timeoutMs);
      try {
        await app.close();
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
