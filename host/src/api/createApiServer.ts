import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { EventBus } from '../bus/EventBus.ts';
import { subjectsFor, type Subjects } from '../bus/subjects.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { WorkerService } from '../workers/WorkerService.ts';
import { apiErrorBody } from './apiErrorBody.ts';
import { registerAuthHook, type AuthHookOptions } from './authHook.ts';
import { registerEventRoutes } from './eventRoutes.ts';
import { registerLogRoutes, type LogStreams } from './logRoutes.ts';
import { registerMetricsRoutes, type MetricsSource } from './metricsRoutes.ts';
import { registerOpenApiRoutes } from './openApiRoutes.ts';
import { registerPluginRoutes } from './pluginRoutes.ts';
import { collectRoutes } from './routeTable.ts';
import { registerSecretRoutes } from './secretRoutes.ts';
import type { SecretRotation } from './SecretRotation.ts';
import { registerSystemRoutes } from './systemRoutes.ts';
import { toApiError } from './toApiError.ts';
import { typeboxValidatorCompiler } from './typeboxValidatorCompiler.ts';
import { registerWorkerRoutes } from './workerRoutes.ts';

/** What the API serves from, and how. */
export interface ApiServerOptions {
  workers: WorkerService;
  registry: PluginRegistry;
  logger: Logger;
  /** Largest accepted request body; larger ones get 413 HOST_ERR_API_BODY_TOO_LARGE. Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Instances that must be running for `/readyz` to answer 200; the default provider instance always is. */
  requiredInstances?: readonly string[];
  /** Serves `GET /metrics` (Prometheus text) when given. */
  metrics?: MetricsSource;
  /** Followed by `GET /v1/events` and checked by `/readyz`; without it `/v1/events` answers 503 HOST_ERR_BUS_UNAVAILABLE. */
  bus?: EventBus;
  /** Subject prefix of the bus (`GET /v1/events` serves only subjects under it); `ci` when absent. */
  subjects?: Subjects;
  /** Bus events kept (at least) for `/v1/events` clients that resume with Last-Event-ID; default EVENT_HISTORY (1000). */
  eventHistory?: number;
  /** The RotationEngine behind `/v1/secrets/*`; without it they answer 503 HOST_ERR_SECRETS_NOT_CONFIGURED. */
  rotation?: SecretRotation;
  /** With the bus away, `/readyz` stays ready while the oldest outbox event is younger than this; default 60 s. */
  outboxMaxAgeMs?: number;
  /** Authentication and authorization of every non-public route; without it the API is open (tests of the routes alone). */
  auth?: AuthHookOptions;
}

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Builds the REST API (routes under `/v1`, plus `/healthz` and `/readyz`) on the host services. Returns the fastify
 * instance without listening: tests use `inject`, the host calls `listen`. Every failure is answered with one body,
 * `{ code, category, message, details?, correlationId }`, and the status `httpStatusFor` gives its code.
 */
export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const log = options.logger.child({ component: 'api' });
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes ?? 1_048_576,
    requestIdHeader: false,
    // The correlation id is the request id: taken from the caller when well formed, otherwise made here.
    genReqId: (req) => {
      const given = req.headers['x-correlation-id'];
      return typeof given === 'string' && CORRELATION_ID.test(given) ? given : randomUUID();
    },
    // Secret names may be 512 characters, more once percent-encoded.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2_048 },
    // Errors the router raises before any route (a malformed URL, a too long parameter) get the one error body too.
    frameworkErrors: (error, req, reply) => {
      const { status, body } = apiErrorBody(toApiError(error), req.id);
      void (reply as FastifyReply).status(status).header('x-correlation-id', req.id).type('application/json').send(body);
    },
  });
  // The API speaks JSON only: a text body would otherwise reach validation as a string and read as a type error.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // Responses are built from contract-checked values; fast-json-stringify would be a second schema engine.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const streams: LogStreams = new Set();

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-correlation-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    log.info({ op: `${req.method} ${req.routeOptions.url ?? req.url}`, correlationId: req.id, status: reply.statusCode, latencyMs: Math.round(reply.elapsedTime * 100) / 100 }, 'api request');
  });
  app.addHook('preClose', async () => {
    // Open log streams would keep close() waiting for ever: end them; a client resumes with Last-Event-ID.
    for (const stream of streams) stream.end();
  });

  app.setErrorHandler(async (error, req, reply) => {
    const wm = toApiError(error);
    const { status, body } = apiErrorBody(wm, req.id);
    if (status >= 500) log.error({ correlationId: req.id, err: wm.toJSON(), stack: error instanceof Error ? error.stack : undefined }, 'api request failed');
    // An error that knows when a retry can work says so (HOST_ERR_DRAINING: the seconds left of the host's drain).
    const retryAfter = wm.details?.['retryAfterSeconds'];
    if (typeof retryAfter === 'number' && Number.isInteger(retryAfter) && retryAfter > 0) void reply.header('retry-after', String(retryAfter));
    return reply.status(status).type('application/json').send(body);
  });
  app.setNotFoundHandler(async (req, reply) => {
    return reply.status(404).type('application/json').send({
      code: 'WM_ERR_NOT_FOUND', category: 'ClientValidation', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}`, details: { method: req.method }, correlationId: req.id,
    });
  });

  if (options.auth !== undefined) registerAuthHook(app, options.auth);
  // First, so that it sees every route registered after it (the OpenAPI document is built from them).
  const routes = collectRoutes(app);
  registerWorkerRoutes(app, options.workers);
  registerLogRoutes(app, options.workers, streams);
  registerSystemRoutes(app, options);
  registerPluginRoutes(app, options.registry);
  registerEventRoutes(app, options.bus, options.subjects ?? subjectsFor('ci'), streams, options.eventHistory);
  registerSecretRoutes(app, options.rotation);
  registerOpenApiRoutes(app, routes);
  if (options.metrics !== undefined) registerMetricsRoutes(app, options.metrics);
  return app;
}
