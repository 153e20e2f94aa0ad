import type { FastifyInstance } from 'fastify';
import { WorkerManagerError, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import type { WorkerService } from '../workers/WorkerService.ts';
import {
  ApiError, CreateWorkerBody, ExecBody, ExecutionResult, ListWorkersQuery, RestartResult, RoutedWorker, TerminateQuery, TerminateResult, WorkerPage,
  WorkerParams, WorkerStateResult, WorkerStatus,
} from './apiSchemas.ts';
import { decodeWorkerCursor, encodeWorkerCursor, workerSortKey } from './workerCursor.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

/** `label=k=v` values (one or repeated) as a label map; the schema already required each to contain `=`. */
function parseLabels(label: string | string[] | undefined): Record<string, string> | undefined {
  if (label === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const pair of Array.isArray(label) ? label : [label]) {
    const at = pair.indexOf('=');
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/** Worker lifecycle routes: create, list, get, terminate, exec, pause, resume, restart. */
export function registerWorkerRoutes(app: FastifyInstance, workers: WorkerService): void {
  app.post<{ Body: CreateWorkerBody }>('/v1/workers', { schema: { body: CreateWorkerBody, response: { 201: RoutedWorker, ...errors } } }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', 'idempotency-key must be 1-256 printable ASCII characters', { details: { path: '/headers/idempotency-key' } });
    }
    const { provider, workerId, labels } = req.body;
    const spec: RuntimeSpec = labels === undefined ? req.body.spec : { ...req.body.spec, labels: { ...req.body.spec.labels, ...labels } };
    const routed = await workers.createWorker({
      spec, correlationId: req.id,
      ...(provider === undefined ? {} : { provider }),
      ...(workerId === undefined ? {} : { workerId }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    });
    return reply.status(201).send(routed);
  });

  app.get<{ Querystring: ListWorkersQuery }>('/v1/workers', { schema: { querystring: ListWorkersQuery, response: { 200: WorkerPage, ...errors } } }, async (req) => {
    const { provider, state, limit = 50, cursor } = req.query;
    const after = cursor === undefined ? undefined : decodeWorkerCursor(cursor);
    const labels = parseLabels(req.query.label);
    const all = await workers.listWorkers({ ...(provider === undefined ? {} : { provider }), ...(labels === undefined ? {} : { labels }) });
    // Providers filter by label themselves; checked again here so a provider that ignores the filter cannot widen it.
    const matching = all
      .filter((r) => labels === undefined || Object.entries(labels).every(([k, v]) => r.worker.labels[k] === v))
      .filter((r) => state === undefined || r.worker.state.phase === state)
      .map((r) => ({ key: workerSortKey(r.instance, r.worker.workerId), r }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .filter((e) => after === undefined || e.key > after);
    const page = matching.slice(0, limit);
    const last = page.at(-1);
    return { items: page.map((e) => e.r), ...(matching.length > limit && last !== undefined ? { nextCursor: encodeWorkerCursor(last.key) } : {}) };
  });

  app.get<{ Params: WorkerParams }>('/v1/workers/:id', { schema: { params: WorkerParams, response: { 200: WorkerStatus, ...errors } } }, async (req) => {
    const { instance, state } = await workers.getStatus(req.params.id);
    return { instance, workerId: req.params.id, state };
  });

  app.delete<{ Params: WorkerParams; Querystring: TerminateQuery }>(
    '/v1/workers/:id',
    { schema: { params: WorkerParams, querystring: TerminateQuery, response: { 200: TerminateResult, ...errors } } },
    async (req) => {
      const { gracePeriodMs } = req.query;
      const result = await workers.terminateWorker(req.params.id, { correlationId: req.id, ...(gracePeriodMs === undefined ? {} : { gracePeriodMs }) });
      return { workerId: req.params.id, instance: result.instance ?? null, state: result.state, alreadyGone: result.alreadyGone };
    },
  );

  app.post<{ Params: WorkerParams; Body: ExecBody }>(
    '/v1/workers/:id/exec',
    { schema: { params: WorkerParams, body: ExecBody, response: { 200: ExecutionResult, ...errors } } },
    async (req) => workers.executeCommand(req.params.id, req.body.command, req.body.timeoutMs),
  );

  for (const op of ['pause', 'resume'] as const) {
    app.post<{ Params: WorkerParams }>(`/v1/workers/:id/${op}`, { schema: { params: WorkerParams, response: { 200: WorkerStateResult, ...errors } } }, async (req) => {
      const state = op === 'pause' ? await workers.pauseWorker(req.params.id) : await workers.resumeWorker(req.params.id);
      return { workerId: req.params.id, state };
    });
  }

  app.post<{ Params: WorkerParams }>('/v1/workers/:id/restart', { schema: { params: WorkerParams, response: { 200: RestartResult, ...errors } } }, async (req) => {
    return { worker: await workers.restartWorker(req.params.id) };
  });
}
