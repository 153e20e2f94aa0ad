import type { FastifyInstance } from 'fastify';
import { ApiError, CapacityList, CapacityQuery, HealthStatus, ProviderList } from './apiSchemas.ts';
import type { ApiServerOptions } from './createApiServer.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };

/** `/v1/providers`, `/v1/capacity`, `/healthz` and `/readyz`. */
export function registerSystemRoutes(app: FastifyInstance, options: ApiServerOptions): void {
  const { registry, workers } = options;

  app.get('/v1/providers', { schema: { response: { 200: ProviderList, ...errors } } }, async () => ({
    // Rows whose kind is unknown failed before their metadata was read; they may be providers, so they are listed.
    // Rows without an instance ('-') are plugins nobody instantiated: they belong to a plugin listing, not here.
    providers: registry.report().filter((r) => r.kind !== 'credentials' && r.instance !== '-').map((r) => ({
      instance: r.instance, plugin: r.plugin, package: r.package, version: r.version, hostApi: r.hostApi, isolation: r.isolation,
      capabilities: r.capabilities, ignoredCapabilities: r.ignoredCapabilities, state: r.state, default: r.default, error: r.error,
    })),
  }));

  app.get<{ Querystring: CapacityQuery }>('/v1/capacity', { schema: { querystring: CapacityQuery, response: { 200: CapacityList, ...errors } } }, async (req) => ({
    capacity: await workers.getCapacity(req.query.provider),
  }));

  app.get('/healthz', { schema: { response: { 200: HealthStatus } } }, async () => ({ status: 'ok' as const }));

  // Ready when every required instance runs: the default provider and the ones named by the host (plugins whose
  // boot failure aborts the host). An instance that is restarting makes the host unready until it is back.
  app.get('/readyz', { schema: { response: { 200: HealthStatus, 503: HealthStatus } } }, async (_req, reply) => {
    const required = new Set(options.requiredInstances ?? []);
    const rows = registry.report().filter((r) => r.default || required.has(r.instance));
    const checks: Array<{ instance: string; state: string; ok: boolean }> = rows.map((r) => ({ instance: r.instance, state: r.state, ok: r.state === 'running' }));
    const missing = [...required].filter((name) => !rows.some((r) => r.instance === name));
    for (const instance of missing) checks.push({ instance, state: 'missing', ok: false });
    const ready = checks.every((c) => c.ok);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks });
  });
}
