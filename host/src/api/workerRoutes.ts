import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WorkerManagerError, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import type { Static } from 'typebox';
import type { AuthzResource } from '../security/authz/Authorizer.ts';
import { ledgerStateOf } from '../workers/ledger/index.ts';
import type { ListedWorker, RoutedWorker as Routed, WorkerService } from '../workers/WorkerService.ts';
import {
  ApiError, CreateWorkerBody, CreateWorkerHeaders, CreateWorkerQuery, ExecBody, ExecutionResult, ListWorkersQuery, PortForwardBody, PortForwardResult, RestartResult, TerminateQuery,
  TerminateResult, WorkerPage, WorkerParams, WorkerStateResult, WorkerStatus,
} from './apiSchemas.ts';
import { callerOf, operationContext, paramOf } from './routeConfig.ts';
import { parsePhaseFilter } from './phaseFilter.ts';
import { parseLabelSelectorAt as parseLabelSelector } from './labelSelectorQuery.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

/** The worker a per-worker route targets; the auth hook may add its tenant and owner from the worker's labels. */
const workerResource = (req: FastifyRequest): AuthzResource => ({ type: 'Worker', id: paramOf(req, 'params', 'id') });

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

/**
 * A create's answer: the worker's record as the ledger has it (the same body `GET /v1/workers/{id}` answers), or,
 * for a service without a ledger, what the provider answered.
 */
function statusOf(routed: Routed, view: ListedWorker | undefined): Static<typeof WorkerStatus> {
  if (view === undefined) {
    return { instance: routed.instance, workerId: routed.worker.workerId, state: routed.worker.state, phase: ledgerStateOf(routed.worker.state).phase, stale: false };
  }
  return { instance: view.instance, workerId: view.worker.workerId, state: view.worker.state, phase: view.phase, stale: view.stale, ...(view.record === undefined ? {} : { record: view.record }) };
}

/** The ledger's complaint about a listing query (a forged cursor, say) as the 400 any bad query parameter gets, with its path. */
async function listOrExplain<T>(list: () => Promise<T>): Promise<T> {
  try {
    return await list();
  } catch (error) {
    if (!(error instanceof WorkerManagerError) || error.code !== 'HOST_ERR_WORKER_LIST_QUERY_INVALID') throw error;
    const field = typeof error.details?.['field'] === 'string' ? error.details['field'] : 'cursor';
    throw new WorkerManagerError('WM_ERR_VALIDATION', error.message, { details: { path: `/querystring/${field}` }, cause: error });
  }
}

/** Worker lifecycle routes: create, list, get, terminate, exec, pause, resume, restart. */
export function registerWorkerRoutes(app: FastifyInstance, workers: WorkerService): void {
  app.post<{ Body: CreateWorkerBody; Querystring: CreateWorkerQuery }>('/v1/workers', {
    schema: {
      summary: 'Create a worker: 202 once it is recorded and accepted by its provider, or 201 once it reached what ?wait asks for',
      body: CreateWorkerBody, headers: CreateWorkerHeaders, querystring: CreateWorkerQuery,
      response: { 201: WorkerStatus, 202: WorkerStatus, ...errors },
    },
    config: {
      action: 'worker:create',
      resource: (req) => {
        const body = req.body as { workerId?: unknown; provider?: unknown } | undefined;
        const caller = callerOf(req);
        return {
          type: 'Worker', id: typeof body?.workerId === 'string' ? body.workerId : '*',
          ...(typeof body?.provider === 'string' ? { provider: body.provider } : {}),
          ...(caller?.tenant === undefined ? {} : { tenant: caller.tenant }),
          ...(caller === undefined ? {} : { owner: caller.id }),
        };
      },
    },
  }, async (req, reply) => {
    const key = req.headers['idempotency-key'];
    if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', 'idempotency-key must be 1-256 printable ASCII characters', { details: { path: '/headers/idempotency-key' } });
    }
    const { provider, workerId, labels } = req.body;
    const spec: RuntimeSpec = labels === undefined ? req.body.spec : { ...req.body.spec, labels: { ...req.body.spec.labels, ...labels } };
    const routed = await workers.createWorker({
      spec, ...operationContext(req),
      ...(provider === undefined ? {} : { provider }),
      ...(workerId === undefined ? {} : { workerId }),
      ...(key === undefined ? {} : { idempotencyKey: key }),
    });
    const id = routed.worker.workerId;
    void reply.header('location', `/v1/workers/${encodeURIComponent(id)}`);
    const { wait, waitTimeoutMs = 120_000 } = req.query;
    if (wait === undefined) return reply.status(202).send(statusOf(routed, await workers.view(id)));
    // A client that hangs up stops the wait (the worker goes on: it was accepted).
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    reply.raw.once('close', onClose);
    try {
      const { view, reached } = await workers.awaitWorker(id, wait, { timeoutMs: waitTimeoutMs, signal: gone.signal });
      return reply.status(reached ? 201 : 202).send(statusOf(routed, view));
    } finally {
      reply.raw.off('close', onClose);
    }
  });

  app.get<{ Querystring: ListWorkersQuery }>('/v1/workers', {
    schema: { summary: 'List workers, filtered and paginated', querystring: ListWorkersQuery, response: { 200: WorkerPage, ...errors } },
    // A tenant's listing is scoped to its tenant (WorkerService filters by the wm.tenant label), so the resource is that tenant's workers.
    config: {
      action: 'worker:read',
      resource: (req) => {
        const tenant = callerOf(req)?.tenant;
        const provider = paramOf(req, 'query', 'provider');
        return { type: 'Worker', id: '*', ...(provider === '*' ? {} : { provider }), ...(tenant === undefined ? {} : { tenant }) };
      },
    },
  }, async (req) => {
    const { provider, state, tenant, order, limit = 50, cursor } = req.query;
    const labels = parseLabels(req.query.label);
    // `label=k=v` filters are equality requirements added to the selector, so both go to the store as one query.
    const selector = parseLabelSelector([...Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`), ...(req.query.selector === undefined ? [] : [req.query.selector])].join(','), '/querystring/selector');
    return listOrExplain(() => workers.listRecords({
      limit,
      ...(provider === undefined ? {} : { instance: provider }),
      ...(state === undefined ? {} : { phases: parsePhaseFilter(state) }),
      ...(tenant === undefined ? {} : { tenant }),
      ...(order === undefined ? {} : { order }),
      ...(cursor === undefined ? {} : { cursor }),
      ...(selector === undefined ? {} : { selector }),
    }, operationContext(req)));
  });

  app.get<{ Params: WorkerParams }>('/v1/workers/:id', {
    schema: { summary: 'A worker: its state and its whole ledger record', params: WorkerParams, response: { 200: WorkerStatus, ...errors } },
    config: { action: 'worker:read', resource: workerResource },
  }, async (req) => {
    const { instance, worker, phase, stale, record } = await workers.getRecord(req.params.id, operationContext(req));
    return { instance, workerId: req.params.id, state: worker.state, phase, stale, ...(record === undefined ? {} : { record }) };
  });

  app.delete<{ Params: WorkerParams; Querystring: TerminateQuery }>(
    '/v1/workers/:id',
    {
      schema: { summary: 'Terminate a worker (a repeated terminate succeeds; an id nothing knows is 404)', params: WorkerParams, querystring: TerminateQuery, response: { 200: TerminateResult, ...errors } },
      config: { action: 'worker:terminate', resource: workerResource },
    },
    async (req) => {
      const { gracePeriodMs } = req.query;
      const result = await workers.terminateWorker(req.params.id, { ...operationContext(req), ...(gracePeriodMs === undefined ? {} : { gracePeriodMs }) });
      // A worker no instance and no record knows is a mistyped id far more often than a retry: say so (404) rather than
      // report success. A retried DELETE still succeeds: the first one leaves the record (Terminated) behind.
      if (result.alreadyGone && result.instance === undefined) {
        throw new WorkerManagerError('WM_ERR_NOT_FOUND', `no worker '${req.params.id}': no provider instance runs it and the ledger has no record of it`, { details: { workerId: req.params.id } });
      }
      return { workerId: req.params.id, instance: result.instance ?? null, state: result.state, alreadyGone: result.alreadyGone };
    },
  );

  app.post<{ Params: WorkerParams; Body: ExecBody }>(
    '/v1/workers/:id/exec',
    {
      schema: { summary: 'Run a command in a worker', params: WorkerParams, body: ExecBody, response: { 200: ExecutionResult, ...errors } },
      config: { action: 'worker:exec', resource: workerResource },
    },
    async (req) => workers.executeCommand(req.params.id, req.body.command, req.body.timeoutMs, operationContext(req)),
  );

  for (const op of ['pause', 'resume'] as const) {
    app.post<{ Params: WorkerParams }>(`/v1/workers/:id/${op}`, {
      schema: { summary: op === 'pause' ? 'Pause (freeze) a worker' : 'Resume a paused worker', params: WorkerParams, response: { 200: WorkerStateResult, ...errors } },
      config: { action: op === 'pause' ? 'worker:pause' : 'worker:resume', resource: workerResource },
    }, async (req) => {
      const state = op === 'pause' ? await workers.pauseWorker(req.params.id, operationContext(req)) : await workers.resumeWorker(req.params.id, operationContext(req));
      return { workerId: req.params.id, state };
    });
  }

  app.post<{ Params: WorkerParams }>('/v1/workers/:id/restart', {
    schema: { summary: 'Restart a worker with the same spec', params: WorkerParams, response: { 200: RestartResult, ...errors } },
    config: { action: 'worker:restart', resource: workerResource },
  }, async (req) => {
    return { worker: await workers.restartWorker(req.params.id, operationContext(req)) };
  });

  app.post<{ Params: WorkerParams; Body: PortForwardBody }>('/v1/workers/:id/port-forward', {
    schema: {
      summary: 'Open a local endpoint that reaches a port of the worker',
      description: 'The endpoint (`host:port`) listens on the machine that runs the provider plugin, on loopback. Repeating the call returns the open endpoint. '
        + 'A provider without the worker.portForward capability answers 400 WM_ERR_COMPATIBILITY.',
      params: WorkerParams, body: PortForwardBody, response: { 200: PortForwardResult, ...errors },
    },
    config: { action: 'worker:portForward', resource: workerResource },
  }, async (req) => {
    const workerId = req.params.id;
    const { remotePort, localPort } = req.body;
    const { instance, endpoint } = await workers.portForward(workerId, localPort === undefined ? { remotePort } : { remotePort, localPort }, operationContext(req));
    return { workerId, instance, endpoint };
  });
}
