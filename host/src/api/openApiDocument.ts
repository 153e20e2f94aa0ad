import { ExecutionResult, LogChunk, RuntimeSpec, Worker, WorkerState } from '@worker-manager/plugin-sdk';
import { HOST_API_VERSION } from '@worker-manager/plugin-sdk';
import { ApiError, HealthStatus, PluginDetail, PluginRow, ProviderRow, RotationRecord, SecretVersionEntry } from './apiSchemas.ts';
import type { RouteSpec } from './routeTable.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** An OpenAPI 3.1 document (kept as plain JSON: it is written to disk and served as is). */
export type OpenApiDocument = JsonObject;

/**
 * Schemas shared by several operations, emitted once under `components/schemas` and referenced. Matched by identity:
 * typebox keeps the objects it composes, so `Type.Object({ worker: Worker })` holds the very `Worker` schema.
 */
const COMPONENTS: ReadonlyArray<[string, object]> = [
  ['ApiError', ApiError], ['Worker', Worker], ['WorkerState', WorkerState], ['RuntimeSpec', RuntimeSpec], ['LogChunk', LogChunk],
  ['ExecutionResult', ExecutionResult], ['SecretVersion', SecretVersionEntry], ['RotationRecord', RotationRecord], ['ProviderRow', ProviderRow],
  ['PluginRow', PluginRow], ['PluginDetail', PluginDetail], ['HealthStatus', HealthStatus],
];

const STATUS_TEXT: Readonly<Record<string, string>> = {
  '200': 'OK', '201': 'Created', '4XX': 'Client error (the body says which; see the status table in host/src/api/README.md)',
  '5XX': 'Server or infrastructure error', '503': 'Unavailable',
};

/** Plain JSON of a typebox schema, with shared schemas replaced by references (typebox's own keys are non-enumerable). */
function toJsonSchema(schema: unknown, refs: Map<object, string>, top = true): Json {
  if (typeof schema !== 'object' || schema === null) return schema as Json;
  const name = refs.get(schema);
  if (name !== undefined && !top) return { $ref: `#/components/schemas/${name}` };
  if (Array.isArray(schema)) return schema.map((s) => toJsonSchema(s, refs, false));
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) out[key] = toJsonSchema(value, refs, false);
  return out;
}

/** `/v1/workers/:id` as OpenAPI writes it (`/v1/workers/{id}`). */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** A stable operation id from method and path: `GET /v1/workers/:id/logs` is `getWorkersByIdLogs`. */
function operationId(method: string, url: string): string {
  const words = url.split('/').filter((s) => s.length > 0 && s !== 'v1').map((s) => (s.startsWith(':') ? `By-${s.slice(1)}` : s));
  const camel = words.join('-').split(/[^A-Za-z0-9]+/).filter((w) => w.length > 0).map((w) => w[0]?.toUpperCase() + w.slice(1)).join('');
  return `${method.toLowerCase()}${camel}`;
}

function tagOf(url: string): string {
  const parts = url.split('/').filter((s) => s.length > 0);
  return parts[0] === 'v1' && parts[1] !== undefined && parts[1] !== 'openapi.json' ? parts[1] : 'system';
}

/** Query, path or header parameters from an object schema of that part of the request. */
function parameters(schema: unknown, where: 'query' | 'path' | 'header', refs: Map<object, string>): JsonObject[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const { properties = {}, required = [] } = schema as { properties?: Record<string, { description?: string }>; required?: string[] };
  return Object.entries(properties).map(([name, property]) => {
    const param: JsonObject = { name, in: where, required: where === 'path' || required.includes(name), schema: toJsonSchema(property, refs) };
    if (property.description !== undefined) param['description'] = property.description;
    return param;
  });
}

/** True when an empty object satisfies the body schema: the body may then be left out. */
function bodyIsOptional(schema: unknown): boolean {
  const s = schema as { type?: unknown; required?: unknown[] };
  return s.type === 'object' && (s.required === undefined || s.required.length === 0);
}

function responses(route: RouteSpec, refs: Map<object, string>): JsonObject {
  const declared = (route.schema?.response ?? {}) as Record<string, unknown>;
  const produces = route.schema?.produces ?? ['application/json'];
  const out: JsonObject = {};
  for (const [status, schema] of Object.entries(declared)) {
    const code = status.toUpperCase();
    const json = toJsonSchema(schema, refs, false);
    const content: JsonObject = {};
    const media = code.startsWith('2') ? produces : ['application/json'];
    for (const type of media) {
      content[type] = type === 'text/event-stream'
        ? { schema: { type: 'string', description: 'Server-Sent Events; see the operation description for the events sent.' } }
        : { schema: json };
    }
    const description = (schema as { description?: unknown }).description;
    out[code] = { description: typeof description === 'string' ? description : (STATUS_TEXT[code] ?? 'Answer'), content };
  }
  if (Object.keys(out).length === 0) {
    // No schema: the answer is text in the media types the route names (the Prometheus exposition).
    const content: JsonObject = {};
    for (const type of route.schema?.produces ?? []) content[type] = { schema: { type: 'string' } };
    out['200'] = Object.keys(content).length === 0 ? { description: 'OK' } : { description: 'OK', content };
  }
  return out;
}

function operation(route: RouteSpec, refs: Map<object, string>): JsonObject {
  const schema = route.schema ?? {};
  const config = route.config ?? {};
  const op: JsonObject = {
    operationId: operationId(route.method, route.url),
    tags: [...(schema.tags ?? [tagOf(route.url)])],
  };
  if (schema.summary !== undefined) op['summary'] = schema.summary;
  if (schema.description !== undefined) op['description'] = schema.description;
  const params = [
    ...parameters(schema.params, 'path', refs),
    ...parameters(schema.querystring, 'query', refs),
    ...parameters(schema.headers, 'header', refs),
    { $ref: '#/components/parameters/CorrelationId' },
  ];
  op['parameters'] = params;
  if (schema.body !== undefined) {
    op['requestBody'] = { required: !bodyIsOptional(schema.body), content: { 'application/json': { schema: toJsonSchema(schema.body, refs, false) } } };
  }
  op['responses'] = responses(route, refs);
  if (schema.security !== undefined) op['security'] = schema.security.map((requirement) => Object.fromEntries(Object.entries(requirement).map(([k, v]) => [k, [...v]])));
  else if (config.public === true) op['security'] = [];
  if (config.action !== undefined) op['x-action'] = config.action;
  return op;
}

/**
 * The OpenAPI 3.1 document of the served routes, built from their own typebox schemas (JSON Schema 2020-12, which
 * OpenAPI 3.1 takes as is) and their `config` (the authorization action as `x-action`; public routes need no token).
 * Deterministic for a given route set, so the checked-in copy can be compared byte for byte.
 */
export function buildOpenApiDocument(routes: readonly RouteSpec[]): OpenApiDocument {
  const refs = new Map<object, string>(COMPONENTS.map(([name, schema]) => [schema, name]));
  const schemas: JsonObject = {};
  for (const [name, schema] of COMPONENTS) schemas[name] = toJsonSchema(schema, refs, true);
  const paths: Record<string, JsonObject> = {};
  const sorted = [...routes].sort((a, b) => (a.url === b.url ? a.method.localeCompare(b.method) : a.url < b.url ? -1 : 1));
  for (const route of sorted) {
    const path = openApiPath(route.url);
    paths[path] ??= {};
    (paths[path] as JsonObject)[route.method.toLowerCase()] = operation(route, refs);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'worker-manager REST API',
      version: HOST_API_VERSION,
      description: 'Creates, watches and tears down ephemeral CI/CD workers on any infrastructure through versioned plugins. '
        + 'Every non-2xx answer has the body ApiError; the x-action of an operation is the action it is authorized as.',
    },
    security: [{ bearerAuth: [] }],
    paths,
    components: {
      schemas,
      parameters: {
        CorrelationId: {
          name: 'x-correlation-id', in: 'header', required: false,
          description: 'Correlation id carried into logs, plugin calls and events; generated when absent or malformed, and echoed in the answer.',
          schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
        },
      },
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'An OIDC access token, or the local admin token of the embedded default.' } },
    },
  };
}
