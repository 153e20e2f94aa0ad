import Type, { type Static } from 'typebox';

/**
 * States of a record. A rotation is `pending` until it holds its secret's lock, then `in_progress`, then `completed`;
 * or `failed` (its automatic rollback is a record of its own, `rollbackId`), or `cancelled` (it never started: a
 * rollback of the secret was still unfinished), or `rollback` (a manual rollback reverted it during its grace
 * period). A rollback record is `rollback` while it runs, retrying with backoff until it can finish, then
 * `completed`. A failed or rolled-back secret is rotated again by a new record, which starts `pending`.
 */
export const RotationState = Type.Union([
  Type.Literal('pending'), Type.Literal('in_progress'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('rollback'), Type.Literal('cancelled'),
]);
/** Rotation state. */
export type RotationState = Static<typeof RotationState>;

/** What started a rotation. */
export const RotationTrigger = Type.Union([Type.Literal('time'), Type.Literal('event'), Type.Literal('manual')]);
/** Rotation trigger. */
export type RotationTrigger = Static<typeof RotationTrigger>;

/**
 * Steps, in order. Rotation: `create`, `test`, `promote`, `distribute`, `grace`, `revoke`. Rollback: `restore`,
 * `redistribute`, `revoke-new` (automatic rollback), or `grace`, `revoke` (manual rollback, whose undone version stays
 * readable for the grace period). On a store whose new versions are live at once (`secret.rotate.immediate`), a
 * rollback's first step is `roll-forward` instead of `restore`: a new version replaces the one rolled back from.
 */
export type RotationStep = 'create' | 'test' | 'promote' | 'distribute' | 'grace' | 'revoke' | 'restore' | 'roll-forward' | 'redistribute' | 'revoke-new';

const ErrorInfo = Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false });

/**
 * A step that failed and is retried with exponential backoff (a rollback step, or the revocation after the grace
 * period): how often it failed, the last error, and when it runs again. `nextAttemptAt` is absent once it succeeded.
 */
export const RetryState = Type.Object(
  {
    attempts: Type.Integer({ minimum: 1, description: 'Failed attempts so far.' }),
    lastAttemptAt: Type.String({ description: 'When the last failed attempt ended.' }),
    nextAttemptAt: Type.Optional(Type.String({ description: 'When the next attempt runs; absent once the step succeeded.' })),
    lastError: ErrorInfo,
  },
  { additionalProperties: false },
);
/** Retry state of a record. */
export type RetryState = Static<typeof RetryState>;

const fields = {
  id: Type.String({ minLength: 1 }),
  credentials: Type.String({ minLength: 1 }),
  name: Type.String({ minLength: 1 }),
  trigger: RotationTrigger,
  requester: Type.String(),
  state: RotationState,
  step: Type.Optional(Type.String()),
  /** Rotation: the version active before. Rollback: the version being undone. */
  previousVersion: Type.Optional(Type.String()),
  /** Rotation: the version created and promoted. Rollback: the version restored. */
  newVersion: Type.Optional(Type.String()),
  startedAt: Type.String(),
  finishedAt: Type.Optional(Type.String()),
  error: Type.Optional(ErrorInfo),
  /** Workers whose mounts were refreshed or that were restarted with the new material. */
  workers: Type.Array(Type.String()),
  latencyMs: Type.Optional(Type.Number({ minimum: 0 })),
  /** `rollback` for a rollback record (automatic after a failure, or requested); `rotate` otherwise. */
  operation: Type.Union([Type.Literal('rotate'), Type.Literal('rollback')]),
  /** The failed rotation an automatic rollback undoes. */
  rollbackOf: Type.Optional(Type.String()),
  /** A failed rotation: the id of its automatic rollback record. */
  rollbackId: Type.Optional(Type.String()),
  /** Set once a step of this record failed and was retried (see RetryState). */
  retry: Type.Optional(RetryState),
};

/** A rotation or rollback as callers see it: names, versions and ids, never a value. */
export const RotationRecord = Type.Object(fields, { additionalProperties: false });
/** Rotation record (the design's `RotationRecord`). */
export type RotationRecord = Static<typeof RotationRecord>;

/**
 * An event a record owes the bus: written to the journal with the state change it announces, removed once published,
 * so a crash between the two publishes it at the next start instead of losing it (at least once; `rotationId` lets a
 * consumer drop a repeat).
 */
export const Announcement = Type.Object(
  {
    event: Type.Union([Type.Literal('secretRotated'), Type.Literal('secretRotationFailed')]),
    reason: Type.Optional(Type.String()),
    step: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    rollbackId: Type.Optional(Type.String()),
    /** A retried step: which failed attempt this is, and when the next one runs. */
    attempt: Type.Optional(Type.Integer({ minimum: 1 })),
    nextAttemptAt: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
/** Announcement. */
export type Announcement = Static<typeof Announcement>;

/** A record as the journal keeps it: the public fields plus what recovery needs. */
export const JournalEntry = Type.Object(
  {
    ...fields,
    /** Events not yet published, oldest first. */
    outbox: Type.Optional(Type.Array(Announcement)),
    /** Rollback only: whether the undone version had been promoted (so consumers must be redistributed). */
    undoPromoted: Type.Optional(Type.Boolean()),
    tenant: Type.Optional(Type.String()),
    correlationId: Type.Optional(Type.String()),
    gracePeriodMs: Type.Integer({ minimum: 0 }),
    /** When `previousVersion` is revoked (step `grace`). */
    revokeAt: Type.Optional(Type.String()),
    /** Start time as epoch ms, for latency across a restart. */
    startedAtMs: Type.Number(),
  },
  { additionalProperties: false },
);
/** Journal entry. */
export type JournalEntry = Static<typeof JournalEntry>;

/**
 * Why a version may never become current again: the rotation that created it failed (its test, or a later step).
 * Kept in the journal apart from the records, so it outlives the record's trimming; the engine refuses every stage
 * move onto it. `revoked` once the store confirmed the version revoked (then the mark may be trimmed too).
 */
export const FailedVersion = Type.Object(
  {
    credentials: Type.String({ minLength: 1 }),
    name: Type.String({ minLength: 1 }),
    version: Type.String({ minLength: 1 }),
    rotationId: Type.String({ minLength: 1 }),
    step: Type.String(),
    code: Type.String(),
    failedAt: Type.String(),
    revoked: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Failed version mark. */
export type FailedVersion = Static<typeof FailedVersion>;

/** What the API shows beside a version that failed: the rotation, its step and error code. */
export const VersionFailure = Type.Object(
  {
    rotationId: Type.String({ description: 'The rotation that created the version and failed.' }),
    step: Type.String({ description: 'The step that failed (`test`, `distribute`, ...).' }),
    code: Type.String({ description: 'Error code of the failure.' }),
    failedAt: Type.String(),
  },
  { additionalProperties: false, description: 'The version belongs to a failed rotation: it can never become current again.' },
);
/** Version failure. */
export type VersionFailure = Static<typeof VersionFailure>;

/** The public view of an entry (a copy: callers cannot alter the journal). */
export function publicRecord(entry: JournalEntry): RotationRecord {
  const record: RotationRecord = {
    id: entry.id,
    credentials: entry.credentials,
    name: entry.name,
    trigger: entry.trigger,
    requester: entry.requester,
    state: entry.state,
    startedAt: entry.startedAt,
    workers: [...entry.workers],
    operation: entry.operation,
  };
  if (entry.rollbackOf !== undefined) record.rollbackOf = entry.rollbackOf;
  if (entry.rollbackId !== undefined) record.rollbackId = entry.rollbackId;
  if (entry.retry !== undefined) record.retry = { ...entry.retry, lastError: { ...entry.retry.lastError } };
  if (entry.step !== undefined) record.step = entry.step;
  if (entry.previousVersion !== undefined) record.previousVersion = entry.previousVersion;
  if (entry.newVersion !== undefined) record.newVersion = entry.newVersion;
  if (entry.finishedAt !== undefined) record.finishedAt = entry.finishedAt;
  if (entry.error !== undefined) record.error = { ...entry.error };
  if (entry.latencyMs !== undefined) record.latencyMs = entry.latencyMs;
  return record;
}

/**
 * True once nothing is left to do for the entry. Not the state alone: a rotation a manual rollback reverted during its
 * grace period ends in `rollback`, which is also the state of a rollback still running.
 */
export function isFinished(entry: JournalEntry): boolean {
  return entry.finishedAt !== undefined;
}
