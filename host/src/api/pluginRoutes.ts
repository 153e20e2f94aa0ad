import { effectiveIsolation } from '../config/schema.ts';
import type { FastifyInstance } from 'fastify';
import type { Static } from 'typebox';
import { isWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { PluginRecord, PluginRegistry } from '../plugins/PluginRegistry.ts';
import { ApiError, PluginDetail, PluginList, PluginParams, type PluginRow } from './apiSchemas.ts';
import { paramOf } from './routeConfig.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };

type Row = Static<typeof PluginRow>;
type Detail = Static<typeof PluginDetail>;

const errorOf = (error: unknown): { code: string; message: string } | null =>
  error === undefined ? null : isWorkerManagerError(error) ? { code: error.code, message: error.message } : { code: 'WM_ERR_INTERNAL', message: String(error) };

/** A plugin and its instances, from the registry's records (read at request time: states and counters move). */
function pluginRow(registry: PluginRegistry, plugin: PluginRecord): Row {
  const instances = registry.instances().filter((i) => i.plugin === plugin).map((i) => {
    const stats = i.sandbox?.stats?.();
    return { name: i.name, state: i.state, default: i.entry.default, restarts: stats?.restarts ?? 0, crashes: stats?.crashes ?? 0, error: errorOf(i.error) };
  });
  return {
    name: plugin.name,
    id: plugin.pkg?.metadata.id ?? null,
    package: plugin.pkg?.name ?? null,
    version: plugin.pkg?.version ?? null,
    kind: plugin.pkg?.metadata.kind ?? null,
    hostApi: plugin.pkg?.metadata.hostApi ?? null,
    isolation: effectiveIsolation(plugin.entry),
    capabilities: { ...plugin.negotiated?.capabilities },
    ignoredCapabilities: (plugin.negotiated?.ignored ?? []).map((c) => ({ ...c })),
    error: errorOf(plugin.error),
    instances,
  };
}

function pluginDetail(registry: PluginRegistry, plugin: PluginRecord): Detail {
  return {
    ...pluginRow(registry, plugin),
    description: plugin.pkg?.metadata.description ?? null,
    contract: plugin.negotiated?.contract.name ?? null,
    methods: [...(plugin.negotiated?.methods ?? [])],
    declaredCapabilities: { ...plugin.pkg?.metadata.capabilities },
    onBootFailure: plugin.entry.onBootFailure,
  };
}

/** `GET /v1/plugins` (every plugin package with its instances) and `GET /v1/plugins/{name}` (`wm plugins inspect`). */
export function registerPluginRoutes(app: FastifyInstance, registry: PluginRegistry): void {
  app.get(
    '/v1/plugins',
    {
      schema: { summary: 'List plugins: versions, negotiated capabilities, instances with state and restarts', response: { 200: PluginList, ...errors } },
      config: { action: 'plugin:read', resource: () => ({ type: 'Plugin', id: '*' }) },
    },
    async () => ({ plugins: registry.plugins().map((p) => pluginRow(registry, p)) }),
  );

  app.get<{ Params: PluginParams }>(
    '/v1/plugins/:name',
    {
      schema: { summary: 'Inspect one plugin (by its name in the host config)', params: PluginParams, response: { 200: PluginDetail, ...errors } },
      config: { action: 'plugin:read', resource: (req) => ({ type: 'Plugin', id: paramOf(req, 'params', 'name') }) },
    },
    async (req) => {
      const plugin = registry.plugins().find((p) => p.name === req.params.name);
      if (plugin === undefined) throw new WorkerManagerError('WM_ERR_NOT_FOUND', `no plugin named '${req.params.name}'`, { details: { plugin: req.params.name } });
      return pluginDetail(registry, plugin);
    },
  );
}
