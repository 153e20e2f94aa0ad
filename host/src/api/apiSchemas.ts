import Type, { type Static } from 'typebox';
import { RotationRecord, VersionFailure } from '../secrets/rotation/RotationRecord.ts';
import { LedgerPhase, WorkerRecord } from '../workers/ledger/workerRecord.ts';
import {
  CapacityInfo, CommandLine, ErrorCategory, ExecutionResult, LABEL_KEY_PATTERN, Labels, LogChunk, LogOptions, MAX_LABEL_VALUE_LENGTH, MAX_LABELS, PluginKind, RuntimeSpec, SecretVersion,
  Worker, WorkerId, WorkerState,
} from '@worker-manager/plugin-sdk';

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

/** Headers `POST /v1/workers` reads (others pass). */
export const CreateWorkerHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: '^[\\x21-\\x7e]{1,256}$', description: 'a repeat with the same key returns the first worker' })),
});

/** Query of `POST /v1/workers`: what to wait for before answering, and for how long. */
export const CreateWorkerQuery = Type.Object(
  {
    wait: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('exit')], {
      description: '`running`: answer once the worker runs or has already ended (201); `exit`: once it has ended (201). Without it the answer comes as soon as the worker is accepted (202).',
    })),
    waitTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000, default: 120_000, description: 'How long `wait` waits; when it runs out the answer is 202 with the state reached.' })),
  },
  { additionalProperties: false },
);
/** Create query. */
export type CreateWorkerQuery = Static<typeof CreateWorkerQuery>;

/** A worker and the provider instance that runs it. */
export const RoutedWorker = Type.Object({ instance: Type.String(), worker: Worker }, { additionalProperties: false });

// `key=value`: a label key and value as the contract's Labels takes them, so a filter no label can match is refused
// here, with the query's path, rather than by the provider.
const LabelFilter = Type.String({ pattern: `^${LABEL_KEY_PATTERN}=[\\s\\S]{0,${MAX_LABEL_VALUE_LENGTH}}$`, description: 'key=value' });

/** Query of `GET /v1/workers`. `label` is `key=value`, repeatable (all must match); `selector` a label selector. */
export const ListWorkersQuery = Type.Object(
  {
    provider: Type.Optional(InstanceName),
    state: Type.Optional(Type.String({
      minLength: 1, maxLength: 256,
      description: 'Comma-separated phases: the ledger\'s (Pending, Creating, Starting, Running, Degraded, Recovering, Paused, Stopping, Terminated, Failed, Unknown) or the provider contract\'s (Creating and Running also match the ledger phases they stand for, Terminating is Stopping).',
    })),
    tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Only this tenant\'s workers (a caller acting for a tenant sees only its own anyway).' })),
    label: Type.Optional(Type.Union([LabelFilter, Type.Array(LabelFilter, { maxItems: MAX_LABELS })])),
    selector: Type.Optional(Type.String({
      minLength: 1, maxLength: 4096,
      description: 'Label selector, Kubernetes syntax: `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas (all must hold).',
    })),
    order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')], { description: 'By creation time; oldest first by default.' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  },
  { additionalProperties: false },
);
/** List query. */
export type ListWorkersQuery = Static<typeof ListWorkersQuery>;

/**
 * A worker in a listing: the provider-contract view (`worker`), the ledger's finer `phase`, and whether that may be
 * out of date (`stale`: its provider instance is not running). `GET /v1/workers/{id}` has the whole record.
 */
export const ListedWorker = Type.Object(
  { instance: Type.String(), worker: Worker, phase: LedgerPhase, stale: Type.Boolean() },
  { additionalProperties: false },
);

/** One page of workers from the ledger, in creation order; `nextCursor` is absent on the last page. */
export const WorkerPage = Type.Object(
  { items: Type.Array(ListedWorker), nextCursor: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

/** Path parameters of the per-worker routes. */
export const WorkerParams = Type.Object({ id: WorkerId }, { additionalProperties: false });
/** Worker path params. */
export type WorkerParams = Static<typeof WorkerParams>;

/** Answer of pause and resume. */
export const WorkerStateResult = Type.Object({ workerId: WorkerId, state: WorkerState }, { additionalProperties: false });

/** Answer of `GET /v1/workers/{id}`: the worker's state (as the provider contract says it) and its ledger record. */
export const WorkerStatus = Type.Object(
  { instance: Type.String(), workerId: WorkerId, state: WorkerState, phase: LedgerPhase, stale: Type.Boolean(), record: Type.Optional(WorkerRecord) },
  { additionalProperties: false },
);

/** Query of `DELETE /v1/workers/{id}`. */
export const TerminateQuery = Type.Object({ gracePeriodMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })) }, { additionalProperties: false });
/** Terminate query. */
export type TerminateQuery = Static<typeof TerminateQuery>;

/** Answer of `DELETE /v1/workers/{id}`; `alreadyGone`: the worker had already ended, and its record is removed now. */
export const TerminateResult = Type.Object(
  { workerId: WorkerId, instance: Type.Union([Type.String(), Type.Null()]), state: WorkerState, alreadyGone: Type.Boolean() },
  { additionalProperties: false },
);

/** Body of `POST /v1/workers/{id}/exec`. */
export const ExecBody = Type.Object(
  { command: CommandLine, timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })) },
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

/** One readiness check: the bus, or one required plugin instance. `state` says what was found. */
export const ReadinessCheck = Type.Object(
  {
    check: Type.Union([Type.Literal('bus'), Type.Literal('instance'), Type.Literal('shutdown')]),
    ok: Type.Boolean(),
    state: Type.String({ description: 'bus: connected, outbox or disconnected; instance: its state, or missing; shutdown (only while the host shuts down with drain or terminate): draining' }),
    instance: Type.Optional(Type.String()),
    adapter: Type.Optional(Type.String()),
    outbox: Type.Optional(Type.Object({ depth: Type.Integer({ minimum: 0 }), oldestAgeMs: Type.Number({ minimum: 0 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

/** Answer of `/healthz` and `/readyz`; `failed` names the checks that failed (`bus`, `instance:<name>`, `shutdown`). */
export const HealthStatus = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    checks: Type.Optional(Type.Array(ReadinessCheck)),
    failed: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

/** Answer of `/version`: the product's version and the plugin host API version its plugins are negotiated against. */
export const VersionInfo = Type.Object(
  {
    version: Type.String({ description: 'worker-manager version' }),
    hostApi: Type.String({ description: 'plugin host API version (semver) that plugins declare a range against' }),
  },
  { additionalProperties: false },
);

/** Body of `POST /v1/workers/{id}/port-forward`. `localPort` 0 or absent: any free port. */
export const PortForwardBody = Type.Object(
  { remotePort: Type.Integer({ minimum: 1, maximum: 65535 }), localPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })) },
  { additionalProperties: false },
);
/** Port-forward request. */
export type PortForwardBody = Static<typeof PortForwardBody>;
/** Answer of `POST /v1/workers/{id}/port-forward`: where the forward listens, on the host that runs the provider. */
export const PortForwardResult = Type.Object({ workerId: WorkerId, instance: Type.String(), endpoint: Type.String() }, { additionalProperties: false });

/** One instance of a plugin as `GET /v1/plugins` shows it. `restarts` and `crashes` count since the host started. */
export const PluginInstanceRow = Type.Object(
  {
    name: Type.String(),
    state: Type.String(),
    default: Type.Boolean(),
    restarts: Type.Integer({ minimum: 0 }),
    crashes: Type.Integer({ minimum: 0 }),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }), Type.Null()]),
  },
  { additionalProperties: false },
);

const pluginFields = {
  name: Type.String({ description: 'the plugin entry name in the host config' }),
  id: Type.Union([Type.String(), Type.Null()], { description: 'the plugin id from its metadata; null when the package was not read' }),
  package: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  kind: Type.Union([PluginKind, Type.Null()]),
  hostApi: Type.Union([Type.String(), Type.Null()]),
  isolation: Type.String(),
  capabilities: Type.Record(Type.String(), Type.String(), { description: 'negotiated capabilities and the versions the plugin declared' }),
  ignoredCapabilities: Type.Array(Type.Object({ capability: Type.String(), version: Type.String(), reason: Type.String() }, { additionalProperties: false })),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }), Type.Null()]),
  instances: Type.Array(PluginInstanceRow),
};

/** One plugin package of `GET /v1/plugins`, with its instances. */
export const PluginRow = Type.Object(pluginFields, { additionalProperties: false });
/** Answer of `GET /v1/plugins`. */
export const PluginList = Type.Object({ plugins: Type.Array(PluginRow) }, { additionalProperties: false });
/** Answer of `GET /v1/plugins/{name}`: the row plus what `wm plugins inspect` shows. */
export const PluginDetail = Type.Object(
  {
    ...pluginFields,
    description: Type.Union([Type.String(), Type.Null()]),
    contract: Type.Union([Type.String(), Type.Null()], { description: 'the contract the plugin implements (worker-provider, credentials)' }),
    methods: Type.Array(Type.String(), { description: 'operations the host may route to the plugin' }),
    declaredCapabilities: Type.Record(Type.String(), Type.String(), { description: 'capabilities the plugin metadata declares, accepted or not' }),
    onBootFailure: Type.String(),
  },
  { additionalProperties: false },
);
/** Path parameters of `GET /v1/plugins/{name}`. */
export const PluginParams = Type.Object({ name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' }) }, { additionalProperties: false });
/** Plugin path params. */
export type PluginParams = Static<typeof PluginParams>;

const SubjectPattern = Type.String({
  pattern: '^([A-Za-z0-9_-]+|\\*)(\\.([A-Za-z0-9_-]+|\\*))*(\\.>)?$|^>$',
  maxLength: 256,
  description: 'NATS subject pattern (`*` one token, `>` the rest) under the subject prefix; the whole prefix when absent',
});

/** Query of `GET /v1/events`. `type` and `workerId` repeat (any of them matches). */
export const EventsQuery = Type.Object(
  {
    subject: Type.Optional(SubjectPattern),
    type: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }))], { description: 'CloudEvents type, e.g. dev.worker-manager.worker.created' })),
    workerId: Type.Optional(Type.Union([WorkerId, Type.Array(WorkerId)], { description: 'the event subject (the worker the event is about)' })),
  },
  { additionalProperties: false },
);
/** Events query. */
export type EventsQuery = Static<typeof EventsQuery>;

const SecretName = Type.String({ minLength: 1, maxLength: 512, description: 'secret name; a `/` in it is sent as %2F' });
const CredentialsInstance = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$', description: 'credentials instance; the default one when absent' });

/** Path parameters of the secret routes. */
export const SecretParams = Type.Object({ name: SecretName }, { additionalProperties: false });
/** Secret path params. */
export type SecretParams = Static<typeof SecretParams>;
/** Query of `GET /v1/secrets/{name}/versions`. */
export const SecretQuery = Type.Object({ credentials: Type.Optional(CredentialsInstance) }, { additionalProperties: false });
/** Secret query. */
export type SecretQuery = Static<typeof SecretQuery>;
/** Body of rotate and rollback; may be left out. */
export const SecretActionBody = Type.Object({ credentials: Type.Optional(CredentialsInstance) }, { additionalProperties: false });
/** Rotate/rollback body. */
export type SecretActionBody = Static<typeof SecretActionBody>;
/** A version as the API shows it: the contract's metadata, plus `failure` when a failed rotation created it. */
export const SecretVersionEntry = Type.Object({ ...SecretVersion.properties, failure: Type.Optional(VersionFailure) }, { additionalProperties: false });
/** Secret version entry. */
export type SecretVersionEntry = Static<typeof SecretVersionEntry>;
/** Answer of `GET /v1/secrets/{name}/versions`: metadata only, never a value. */
export const SecretVersionList = Type.Object({ name: Type.String(), versions: Type.Array(SecretVersionEntry) }, { additionalProperties: false });

// The RotationEngine's record schema is the single source of truth for what the API answers about a rotation.
export { RotationRecord };

/** Answer of rotate and rollback. */
export const RotationResult = Type.Object({ rotation: RotationRecord }, { additionalProperties: false });
/** Answer of `GET /v1/secrets/{name}/rotations`: the secret's rotation and rollback records, oldest first. */
export const RotationList = Type.Object({ name: Type.String(), rotations: Type.Array(RotationRecord) }, { additionalProperties: false });
