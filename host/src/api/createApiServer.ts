import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { WorkerService } from '../workers/WorkerService.ts';
import { apiErrorBody } from './apiErrorBody.ts';
import { registerLogRoutes, type LogStreams } from './logRoutes.ts';
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
    routerOptions: { ignoreTrailingSlash: true },
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
    return reply.status(status).type('application/json').send(body);
  });
  app.setNotFoundHandler(async (req, reply) => {
    return reply.status(404).type('application/json').send({
      code: 'WM_ERR_NOT_FOUND', category: 'ClientValidation', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}`, details: { method: req.method }, correlationId: req.id,
    });
  });

  registerWorkerRoutes(app, options.workers);
  registerLogRoutes(app, options.workers, streams);
  registerSystemRoutes(app, options);
  return app;
}
