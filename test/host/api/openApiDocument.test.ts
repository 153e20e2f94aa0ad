import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyContextConfig, FastifyInstance } from 'fastify';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { OPENAPI_FILE, renderOpenApiDocument } from '../../../host/src/api/writeOpenApiDocument.ts';
import { MemoryEventBus } from '../../../host/src/bus/MemoryEventBus.ts';
import { createLogger } from '../../../host/src/observability/logger.ts';
import { ACTIONS } from '../../../host/src/security/authz/Authorizer.ts';
import { startTestHost, type TestHost } from '../../helpers/startTestHost.ts';

interface Operation {
  operationId: string;
  'x-action'?: string;
  security?: unknown[];
  parameters: Array<{ name?: string; in?: string; $ref?: string }>;
  responses: Record<string, unknown>;
}
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** Every route fastify serves (method and path), read from its route tree; HEAD routes are the GET routes'. */
function servedRoutes(app: FastifyInstance): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (match === null) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    for (const method of (match[3] ?? '').split(', ')) if (method !== 'HEAD') out.push(`${method} ${stack.join('')}`);
  }
  return out.sort();
}

const documented = (doc: Document): string[] =>
  Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)).sort();

describe('OpenAPI document', () => {
  let t: TestHost;
  let app: FastifyInstance;
  let served: Document;

  before(async () => {
    t = await startTestHost('host: { id: api-openapi, stateDir: ${DIR}/state }\nplugins: []\ninstances: []\n');
    // A fully featured server on a real (empty) host: bus, rotation and metrics given, so every optional route is on.
    app = createApiServer({
      workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: t.host.bus, subjects: t.host.subjects,
      rotation: { listVersions: async () => [], rotate: () => Promise.reject(new Error('unused')), rollback: () => Promise.reject(new Error('unused')), rotations: async () => [] },
      metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => '' },
    });
    const res = await app.inject({ method: 'GET', url: '/v1/openapi.json' });
    assert.equal(res.statusCode, 200, res.body);
    served = res.json<Document>();
  });
  after(async () => {
    await app.close();
    await t.stop();
  });

  it('is checked in and current: docs/openapi.json is what `npm run docs:openapi` writes and what the server serves', async () => {
    const checkedIn = await readFile(OPENAPI_FILE, 'utf8');
    assert.equal(checkedIn, await renderOpenApiDocument(), 'docs/openapi.json is stale: run npm run docs:openapi');
    assert.deepEqual(JSON.parse(checkedIn), served);
  });

  it('validates as OpenAPI 3.1 (and the validator refuses a broken copy)', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(served) as unknown as Record<string, unknown>);
    assert.deepEqual(result.errors, undefined);
    assert.equal(result.valid, true);
    assert.equal(validator.version, '3.1');
    const broken = structuredClone(served);
    const op = broken.paths['/v1/workers']?.['post'] ?? assert.fail('no POST /v1/workers');
    op.responses = { ...op.responses, '4xx': { content: {} } };
    assert.equal((await new Validator().validate(broken as unknown as Record<string, unknown>)).valid, false);
  });

  it('lists every served route, and only those', () => {
    const routes = servedRoutes(app);
    assert.ok(routes.includes('POST /v1/workers/:id/port-forward') && routes.includes('GET /metrics'), routes.join('\n'));
    assert.deepEqual(documented(served), routes);
  });

  it('describes parameters, bodies and answers from the route schemas', () => {
    const logs = served.paths['/v1/workers/{id}/logs']?.['get'] ?? assert.fail('no logs operation');
    assert.deepEqual(logs.parameters.filter((p) => p.in !== undefined).map((p) => `${p.in}:${p.name}`), [
      'path:id', 'query:follow', 'query:tailLines', 'query:sinceSeq', 'query:stdout', 'query:stderr', 'header:last-event-id',
    ]);
    assert.deepEqual(Object.keys((logs.responses['200'] as { content: Record<string, unknown> }).content), ['application/json', 'text/event-stream']);
    assert.deepEqual(Object.keys(logs.responses), ['200', '4XX', '5XX']);
    const create = served.paths['/v1/workers']?.['post'] as Operation & { requestBody: { required: boolean; content: Record<string, { schema: { properties: { spec: unknown } } }> } };
    assert.equal(create.requestBody.required, true);
    assert.deepEqual(create.requestBody.content['application/json']?.schema.properties.spec, { $ref: '#/components/schemas/RuntimeSpec' });
    const rotate = served.paths['/v1/secrets/{name}/rotate']?.['post'] as Operation & { requestBody: { required: boolean } };
    assert.equal(rotate.requestBody.required, false, 'rotate may be called without a body');
  });

  it('has every /v1 route declare an authorization action (public ones say so), as data in the route config', async () => {
    const configs = new Map<string, FastifyContextConfig>();
    const probe = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: t.host.bus });
    // Captures each route's config and answers before any handler runs.
    probe.addHook('onRequest', async (req, reply) => {
      configs.set(`${req.method} ${req.routeOptions.url ?? ''}`, req.routeOptions.config);
      return reply.code(204).send();
    });
    try {
      for (const route of servedRoutes(probe)) {
        const [method, url] = route.split(' ') as [string, string];
        const res = await probe.inject({ method: method as 'GET', url: url.replace(/:([a-z]+)/g, 'w-$1') });
        assert.equal(res.statusCode, 204, route);
      }
      const v1 = [...configs].filter(([route]) => route.split(' ')[1]?.startsWith('/v1/'));
      assert.deepEqual(v1.map(([route]) => route).sort(), documented(served).filter((r) => r.includes(' /v1/')), 'every /v1 route was probed');
      for (const [route, config] of v1) {
        if (route === 'GET /v1/openapi.json') {
          assert.equal(config.public, true);
          continue;
        }
        assert.ok(config.action !== undefined && (ACTIONS as readonly string[]).includes(config.action), `${route} declares no known action`);
        assert.notEqual(config.public, true, `${route} is under /v1 and must not be public`);
      }
      assert.equal(configs.get('GET /healthz')?.public, true);
      assert.equal(configs.get('GET /readyz')?.public, true);
      assert.equal(configs.get('GET /version')?.public, true);
      // The same facts reach the document: the action as x-action, public routes without a security requirement.
      for (const [path, ops] of Object.entries(served.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          const config = configs.get(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`);
          if (config === undefined) continue;
          assert.equal(op['x-action'], config.action, `${method} ${path}`);
          assert.equal(op.security === undefined, config.public !== true, `${method} ${path}`);
        }
      }
    } finally {
      await probe.close();
    }
  });

  it('gives each route with a target a resource function that reads the request without throwing', async () => {
    const probe = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
    const resources = new Map<string, unknown>();
    probe.addHook('onRequest', async (req, reply) => {
      // As the auth hook may call it: in onRequest, before the body is parsed.
      resources.set(`${req.method} ${req.routeOptions.url ?? ''}`, req.routeOptions.config.resource?.(req));
      return reply.code(204).send();
    });
    try {
      await probe.inject({ method: 'GET', url: '/v1/workers/w-7/logs' });
      await probe.inject({ method: 'POST', url: '/v1/workers', payload: { workerId: 'w-9', spec: { command: ['true'] } } });
      await probe.inject({ method: 'POST', url: '/v1/secrets/db%2Fpassword/rotate' });
      await probe.inject({ method: 'GET', url: '/v1/plugins/process' });
      assert.deepEqual(resources.get('GET /v1/workers/:id/logs'), { type: 'Worker', id: 'w-7' });
      assert.deepEqual(resources.get('POST /v1/workers'), { type: 'Worker', id: '*' }, 'the body is not parsed yet in onRequest');
      assert.deepEqual(resources.get('POST /v1/secrets/:name/rotate'), { type: 'Secret', id: 'db/password' });
      assert.deepEqual(resources.get('GET /v1/plugins/:name'), { type: 'Plugin', id: 'process' });
    } finally {
      await probe.close();
    }
  });
});

describe('OpenAPI document without optional services', () => {
  it('is served by a bare server too (the optional routes answer 503 rather than vanish)', async () => {
    const app = createApiServer({ workers: {} as never, registry: {} as never, logger: createLogger({ level: 'silent', hostId: 'x' }), bus: new MemoryEventBus() });
    try {
      const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json<Document>();
      assert.ok(doc.paths['/v1/secrets/{name}/versions'] !== undefined);
      assert.equal(doc.paths['/metrics'], undefined, '/metrics exists only with metrics');
    } finally {
      await app.close();
    }
  });
});
