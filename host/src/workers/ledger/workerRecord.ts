import { Labels, RuntimeSpec, Timestamp, WorkerId } from '@worker-manager/plugin-sdk';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';

/**
 * Phases of a worker in the ledger. Finer than the SDK's `WorkerPhase`: the ledger also knows what the host decided
 * before and around the provider's view (Pending, Starting, Degraded, Recovering); workerStateMachine.ts maps one onto
 * the other and says which moves are legal.
 */
export const LedgerPhase = Type.Union([
  Type.Literal('Pending'),
  Type.Literal('Creating'),
  Type.Literal('Starting'),
  Type.Literal('Running'),
  Type.Literal('Degraded'),
  Type.Literal('Recovering'),
  Type.Literal('Paused'),
  Type.Literal('Stopping'),
  Type.Literal('Terminated'),
  Type.Literal('Failed'),
  Type.Literal('Unknown'),
]);
/** A ledger phase. */
export type LedgerPhase = Static<typeof LedgerPhase>;

const Text = Type.String({ minLength: 1, maxLength: 1024 });

/**
 * The state a record is in. The whole object is replaced on every transition (never merged), so a `pendingReason`
 * set while Starting cannot linger into Running.
 */
export const LedgerState = Type.Object(
  {
    phase: LedgerPhase,
    reason: Type.Optional(Text),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    exitCode: Type.Optional(Type.Integer()),
    pendingReason: Type.Optional(Text),
  },
  { additionalProperties: false },
);
/** The state of a worker record, and what a transition asks for. */
export type LedgerState = Static<typeof LedgerState>;

/** One entry of a record's history; `revision` is the record revision the transition was written at. */
export const StateTransition = Type.Object(
  {
    from: LedgerPhase,
    to: LedgerPhase,
    at: Timestamp,
    reason: Type.Optional(Text),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    revision: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);
/** A history entry. */
export type StateTransition = Static<typeof StateTransition>;

/** How many transitions a record keeps: enough to explain a flapping worker, small enough for one KV value. */
export const HISTORY_LIMIT = 50;

const PhaseTimestamps = Type.Object(
  {
    Pending: Type.Optional(Timestamp),
    Creating: Type.Optional(Timestamp),
    Starting: Type.Optional(Timestamp),
    Running: Type.Optional(Timestamp),
    Degraded: Type.Optional(Timestamp),
    Recovering: Type.Optional(Timestamp),
    Paused: Type.Optional(Timestamp),
    Stopping: Type.Optional(Timestamp),
    Terminated: Type.Optional(Timestamp),
    Failed: Type.Optional(Timestamp),
    Unknown: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);

/** Whether the host asked for the worker (`request`) or found it on a provider without a record (`orphan`). */
export const RecordOrigin = Type.Union([Type.Literal('request'), Type.Literal('orphan')]);

/** What the host wants the worker to become; the reconciler compares it with `state`. */
export const DesiredState = Type.Union([Type.Literal('Running'), Type.Literal('Terminated')]);

/**
 * The host's decision to end a worker (its deadline passed, it did not start in time, the host shut down), written
 * before the host asks the provider to stop it. From then on the worker's end is the host's: whatever end a provider
 * or the host reports, the record ends `Failed` with this reason (recordChanges.ts applies it), and a decision found
 * at start on a worker still alive is carried out again.
 */
export const WorkerEnding = Type.Object(
  {
    reason: Text,
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    pendingReason: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'what the worker was waiting for when it did not start in time' })),
    at: Timestamp,
  },
  { additionalProperties: false },
);
/** A host's decision to end a worker. */
export type WorkerEnding = Static<typeof WorkerEnding>;

/**
 * One worker in the ledger: the single source of truth for its shape (the TypeScript type, the write-time check and
 * the read-time check of stored data all come from here). `spec` is the RuntimeSpec as requested; its secretRefs
 * are references (name, version), and the SDK schema refuses any extra field, so a resolved value cannot be stored.
 */
export const WorkerRecord = Type.Object(
  {
    id: WorkerId,
    tenant: Type.String({ minLength: 1, maxLength: 253 }),
    owner: Type.String({ minLength: 1, maxLength: 512, description: 'principal id of the creator' }),
    instance: Type.String({ minLength: 1, maxLength: 253, description: 'provider instance, bound at create' }),
    labels: Labels,
    spec: RuntimeSpec,
    desired: DesiredState,
    state: LedgerState,
    timestamps: PhaseTimestamps,
    createdAt: Timestamp,
    updatedAt: Timestamp,
    finishedAt: Type.Optional(Timestamp),
    restartCount: Type.Integer({ minimum: 0 }),
    correlationId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    providerRef: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'the provider\'s own handle (pid, container id, pod name), once it has one' })),
    origin: RecordOrigin,
    stale: Type.Optional(Type.Boolean({ description: 'set while the owning provider is unreachable' })),
    startTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'how long the worker may take to reach Running (host.workerStartTimeoutMs or its instance\'s), fixed at create' })),
    ending: Type.Optional(WorkerEnding),
    history: Type.Array(StateTransition, { maxItems: HISTORY_LIMIT }),
    revision: Type.Integer({ minimum: 1, description: 'bumped by every write; the compare-and-set token' }),
  },
  { additionalProperties: false },
);
/** A worker record. */
export type WorkerRecord = Static<typeof WorkerRecord>;

/**
 * What a caller gives `create`: the record without the fields the store owns (revision, history, timestamps,
 * updatedAt, finishedAt). `state` defaults to Pending; an adopted orphan starts in whatever phase it was found in.
 * `createdAt` defaults to the store's clock; an adopted orphan may keep the provider's creation time.
 */
export const NewWorkerRecord = Type.Object(
  {
    id: WorkerId,
    tenant: WorkerRecord.properties.tenant,
    owner: WorkerRecord.properties.owner,
    instance: WorkerRecord.properties.instance,
    labels: Type.Optional(Labels),
    spec: RuntimeSpec,
    desired: Type.Optional(DesiredState),
    state: Type.Optional(LedgerState),
    createdAt: Type.Optional(Timestamp),
    restartCount: Type.Optional(Type.Integer({ minimum: 0 })),
    correlationId: WorkerRecord.properties.correlationId,
    providerRef: WorkerRecord.properties.providerRef,
    origin: Type.Optional(RecordOrigin),
    stale: Type.Optional(Type.Boolean()),
    startTimeoutMs: WorkerRecord.properties.startTimeoutMs,
  },
  { additionalProperties: false },
);
/** Input of `WorkerStore.create`. */
export type NewWorkerRecord = Static<typeof NewWorkerRecord>;

/**
 * The non-state fields `update` may change. `instance` is here so that moving a worker to another provider instance
 * is a deliberate, named change; nothing else in the store ever touches it.
 */
export const WorkerRecordPatch = Type.Object(
  {
    labels: Type.Optional(Labels),
    restartCount: Type.Optional(Type.Integer({ minimum: 0 })),
    stale: Type.Optional(Type.Boolean()),
    desired: Type.Optional(DesiredState),
    instance: Type.Optional(WorkerRecord.properties.instance),
    providerRef: WorkerRecord.properties.providerRef,
    ending: Type.Optional(WorkerEnding),
  },
  { additionalProperties: false },
);
/** Input of `WorkerStore.update`. */
export type WorkerRecordPatch = Static<typeof WorkerRecordPatch>;

/** Compiled checks, built once: records are checked on every write and on every read of stored data. */
export const recordChecks = {
  record: Compile(WorkerRecord),
  newRecord: Compile(NewWorkerRecord),
  state: Compile(LedgerState),
  patch: Compile(WorkerRecordPatch),
};

/** The first schema problem of `value` as `path message`, or undefined when it passes. */
export function schemaProblem(check: { Check(v: unknown): boolean; Errors(v: unknown): Iterable<{ instancePath: string; message: string }> }, value: unknown): string | undefined {
  if (check.Check(value)) return undefined;
  const first = [...check.Errors(value)][0];
  return `${first?.instancePath === '' ? '/' : (first?.instancePath ?? '/')} ${first?.message ?? 'is invalid'}`;
}
