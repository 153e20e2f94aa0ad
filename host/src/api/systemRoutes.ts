import { HOST_API_VERSION } from '@worker-manager/plugin-sdk';
import type { FastifyInstance } from 'fastify';
import type { Static } from 'typebox';
import type { EventBus } from '../bus/EventBus.ts';
import { PRODUCT_VERSION } from '../version.ts';
import { ApiError, CapacityList, CapacityQuery, HealthStatus, ProviderList, VersionInfo, type ReadinessCheck } from './apiSchemas.ts';
import type { ApiServerOptions } from './createApiServer.ts';
import { operationContext, paramOf } from './routeConfig.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };

/** Default of how long the oldest event may wait in the outbox, while the bus is away, before the host is not ready. */
export const OUTBOX_MAX_AGE_MS = 60_000;

/**
 * The bus check: connected; or disconnected with a durable outbox that keeps up (its oldest event younger than
 * `outboxMaxAgeMs`), since events are then kept and delivered later. The memory adapter has no outbox: disconnected
 * means stopped.
 */
export function busCheck(bus: EventBus, outboxMaxAgeMs = OUTBOX_MAX_AGE_MS): Static<typeof ReadinessCheck> {
  const stats = bus.stats();
  const outbox = { depth: stats.outbox.depth, oldestAgeMs: stats.outbox.oldestAgeMs };
  if (stats.connected) return { check: 'bus', ok: true, state: 'connected', adapter: stats.adapter, outbox };
  const hasOutbox = stats.adapter !== 'memory';
  const ok = hasOutbox && stats.outbox.oldestAgeMs <= outboxMaxAgeMs;
  return { check: 'bus', ok, state: hasOutbox ? 'outbox' : 'disconnected', adapter: stats.adapter, outbox };
}

/** `/v1/providers`, `/v1/capacity`, `/healthz`, `/readyz` and `/version`. */
export function registerSystemRoutes(app: FastifyInstance, options: ApiServerOptions): void {
  const { registry, workers } = options;

  app.get('/v1/providers', {
    schema: { summary: 'List provider instances: plugin versions, negotiated capabilities, state', response: { 200: ProviderList, ...errors } },
    config: { action: 'plugin:read', resource: () => ({ type: 'Provider', id: '*' }) },
  }, async () => ({
    // Rows whose kind is unknown failed before their metadata was read; they may be providers, so they are listed.
    // Rows without an instance ('-') are plugins nobody instantiated: they belong to a plugin listing, not here.
    providers: registry.report().filter((r) => r.kind !== 'credentials' && r.instance !== '-').map((r) => ({
      instance: r.instance, plugin: r.plugin, package: r.package, version: r.version, hostApi: r.hostApi, isolation: r.isolation,
      capabilities: r.capabilities, ignoredCapabilities: r.ignoredCapabilities, state: r.state, default: r.default, error: r.error,
    })),
  }));

  app.get<{ Querystring: CapacityQuery }>('/v1/capacity', {
    schema: { summary: 'Capacity of provider instances', querystring: CapacityQuery, response: { 200: CapacityList, ...errors } },
    config: { action: 'plugin:read', resource: (req) => ({ type: 'Provider', id: paramOf(req, 'query', 'provider') }) },
  }, async (req) => ({
    capacity: await workers.getCapacity(req.query.provider, operationContext(req)),
  }));

  // Public, like /healthz and Kubernetes' /version: a client checks what it talks to before it has a token. It names
  // no build, platform or plugin detail.
  app.get('/version', { schema: { summary: 'Product and plugin host API versions', response: { 200: VersionInfo } }, config: { public: true } }, async () => ({ version: PRODUCT_VERSION, hostApi: HOST_API_VERSION }));

  app.get('/healthz', { schema: { summary: 'Liveness: the process serves requests', response: { 200: HealthStatus } }, config: { public: true } }, async () => ({ status: 'ok' as const }));

  // Ready when the bus takes events (connected, or its outbox keeps them) and every required instance runs: the
  // default provider and the ones named by the host (plugins whose boot failure aborts the host). An instance that is
  // restarting makes the host unready until it is back. `failed` names what failed, so an operator need not diff.
  app.get('/readyz', {
    schema: { summary: 'Readiness: bus connected or outbox healthy, required plugin instances running', response: { 200: HealthStatus, 503: HealthStatus } },
    config: { public: true },
  }, async (_req, reply) => {
    const required = new Set(options.requiredInstances ?? []);
    const rows = registry.report().filter((r) => r.default || required.has(r.instance));
    const checks: Array<Static<typeof ReadinessCheck>> = options.bus === undefined ? [] : [busCheck(options.bus, options.outboxMaxAgeMs)];
    for (const r of rows) checks.push({ check: 'instance', instance: r.instance, state: r.state, ok: r.state === 'running' });
    const missing = [...required].filter((name) => !rows.some((r) => r.instance === name));
    for (const instance of missing) checks.push({ check: 'instance', instance, state: 'missing', ok: false });
    // A host that drains takes no new workers: a load balancer should send them elsewhere.
    if (workers.lifecycle?.draining === true) checks.push({ check: 'shutdown', state: 'draining', ok: false });
    const failed = checks.filter((c) => !c.ok).map((c) => (c.check === 'instance' ? `instance:${c.instance ?? ''}` : c.check));
    const ready = failed.length === 0;
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks, ...(ready ? {} : { failed }) });
  });
}
