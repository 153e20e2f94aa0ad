import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { subjectsFor } from '../bus/subjects.ts';
import type { HostConfig } from '../config/schema.ts';
import { hostError } from '../errors.ts';
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

/** Builds the API from the host config's `api` block and listens; a bind failure is HOST_ERR_API_LISTEN_FAILED. */
export async function startApiServer(config: HostConfig, services: Omit<ApiServerOptions, 'bodyLimitBytes' | 'requiredInstances'>): Promise<RunningApiServer> {
  const app = createApiServer({ subjects: subjectsFor(config.bus.subjectPrefix), ...services, bodyLimitBytes: config.api.bodyLimitBytes, requiredInstances: requiredInstances(config) });
  try {
    await app.listen({ host: config.api.host, port: config.api.port });
  } catch (error) {
    await app.close().catch(() => undefined);
    throw hostError('HOST_ERR_API_LISTEN_FAILED', `the API cannot listen on ${config.api.host}:${config.api.port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { host: config.api.host, port: config.api.port } });
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
