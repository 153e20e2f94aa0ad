import Type, { type Static } from 'typebox';
import { CapacityInfo, ErrorCategory, ExecutionResult, Labels, LogChunk, LogOptions, RuntimeSpec, Worker, WorkerId, WorkerState } from '@worker-manager/plugin-sdk';

// Request and response shapes of the REST API, built from the SDK contracts so that HTTP, bus and threads share one
// definition. Query strings arrive as text; the validator converts them (Value.Convert) before checking.

const InstanceName = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' });

/** The one error body of every non-2xx answer. */
export const ApiError = Type.Object(
  {
    code: Type.String({ minLength: 1 }),
    category: ErrorCategory,
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    correlationId: Type.String(),
  },
  { additionalProperties: false },
);
/** Error body. */
export type ApiError = Static<typeof ApiError>;

/** Body of `POST /v1/workers`. `labels` are merged over `spec.labels`. */
export const CreateWorkerBody = Type.Object(
  {
    provider: Type.Optional(InstanceName),
    workerId: Type.Optional(WorkerId),
    spec: RuntimeSpec,
    labels: Type.Optional(Labels),
  },
  { additionalProperties: false },
);
/** Create request. */
export type CreateWorkerBody = Static<typeof CreateWorkerBody>;

/** A worker and the provider instance that runs it. */
export const RoutedWorker = Type.Object({ instance: Type.String(), worker: Worker }, { additionalProperties: false });

/** Query of `GET /v1/workers`. `label` is `key=value`, repeatable (all must match). */
export const ListWorkersQuery = Type.Object(
  {
    provider: Type.Optional(InstanceName),
    state: Type.Optional(Type.String({ minLength: 1 })),
    label: Type.Optional(Type.Union([Type.String({ pattern: '^[^=]+=.*$' }), Type.Array(Type.String({ pattern: '^[^=]+=.*$' }))])),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  },
  { additionalProperties: false },
);
/** List query. */
export type ListWorkersQuery = Static<typeof ListWorkersQuery>;

/** One page of workers; `nextCursor` is absent on the last page. */
export const WorkerPage = Type.Object(
  { items: Type.Array(RoutedWorker), nextCursor: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

/** Path parameters of the per-worker routes. */
export const WorkerParams = Type.Object({ id: WorkerId }, { additionalProperties: false });
/** Worker path params. */
export type WorkerParams = Static<typeof WorkerParams>;

/** Answer of pause and resume. */
export const WorkerStateResult = Type.Object({ workerId: WorkerId, state: WorkerState }, { additionalProperties: false });

/** Answer of `GET /v1/workers/{id}`. */
export const WorkerStatus = Type.Object({ instance: Type.String(), workerId: WorkerId, state: WorkerState }, { additionalProperties: false });

/** Query of `DELETE /v1/workers/{id}`. */
export const TerminateQuery = Type.Object({ gracePeriodMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })) }, { additionalProperties: false });
/** Terminate query. */
export type TerminateQuery = Static<typeof TerminateQuery>;

/** Answer of `DELETE /v1/workers/{id}`; `instance` is null when the worker was already gone. */
export const TerminateResult = Type.Object(
  { workerId: WorkerId, instance: Type.Union([Type.String(), Type.Null()]), state: WorkerState, alreadyGone: Type.Boolean() },
  { additionalProperties: false },
);

/** Body of `POST /v1/workers/{id}/exec`. */
export const ExecBody = Type.Object(
  { command: Type.Array(Type.String(), { minItems: 1 }), timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })) },
  { additionalProperties: false },
);
/** Exec request. */
export type ExecBody = Static<typeof ExecBody>;

export { ExecutionResult, LogChunk };

/** Answer of `POST /v1/workers/{id}/restart`. */
export const RestartResult = Type.Object({ worker: Worker }, { additionalProperties: false });

/**
 * Query of `GET /v1/workers/{id}/logs`: exactly the contract's log options, so the API cannot drift from what
 * providers accept. `sinceSeq` is inclusive; a `Last-Event-ID` header wins over it.
 */
export const LogsQuery = LogOptions;
/** Logs query. */
export type LogsQuery = Static<typeof LogsQuery>;

/** One row of `GET /v1/providers`: a provider instance as the registry reports it. */
export const ProviderRow = Type.Object(
  {
    instance: Type.String(),
    plugin: Type.String(),
    package: Type.Union([Type.String(), Type.Null()]),
    version: Type.Union([Type.String(), Type.Null()]),
    hostApi: Type.Union([Type.String(), Type.Null()]),
    isolation: Type.String(),
    capabilities: Type.Record(Type.String(), Type.String()),
    ignoredCapabilities: Type.Array(Type.Object({ capability: Type.String(), version: Type.String(), reason: Type.String() }, { additionalProperties: false })),
    state: Type.String(),
    default: Type.Boolean(),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }), Type.Null()]),
  },
  { additionalProperties: false },
);
/** Answer of `GET /v1/providers`. */
export const ProviderList = Type.Object({ providers: Type.Array(ProviderRow) }, { additionalProperties: false });

/** Query of `GET /v1/capacity`. */
export const CapacityQuery = Type.Object({ provider: Type.Optional(InstanceName) }, { additionalProperties: false });
/** Capacity query. */
export type CapacityQuery = Static<typeof CapacityQuery>;
/** Answer of `GET /v1/capacity`. */
export const CapacityList = Type.Object(
  { capacity: Type.Array(Type.Object({ instance: Type.String(), capacity: CapacityInfo }, { additionalProperties: false })) },
  { additionalProperties: false },
);

/** Answer of `/healthz` and `/readyz`. */
export const HealthStatus = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    checks: Type.Optional(Type.Array(Type.Object({ instance: Type.String(), state: Type.String(), ok: Type.Boolean() }, { additionalProperties: false }))),
  },
  { additionalProperties: false },
);
