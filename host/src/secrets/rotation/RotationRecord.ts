import Type, { type Static } from 'typebox';

/**
 * States of seed 000, table 11. A rollback record is `rollback` while it runs, then `completed` or `failed`; a rotation
 * a manual rollback reverted ends in `rollback`.
 */
export const RotationState = Type.Union([Type.Literal('pending'), Type.Literal('in_progress'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('rollback')]);
/** Rotation state. */
export type RotationState = Static<typeof RotationState>;

/** What started a rotation. */
export const RotationTrigger = Type.Union([Type.Literal('time'), Type.Literal('event'), Type.Literal('manual')]);
/** Rotation trigger. */
export type RotationTrigger = Static<typeof RotationTrigger>;

/**
 * Steps, in order. Rotation: `create`, `test`, `promote`, `distribute`, `grace`, `revoke`. Rollback: `restore`,
 * `redistribute`, `revoke-new` (automatic rollback), or `grace`, `revoke` (manual rollback, whose undone version stays
 * readable for the grace period).
 */
export type RotationStep = 'create' | 'test' | 'promote' | 'distribute' | 'grace' | 'revoke' | 'restore' | 'redistribute' | 'revoke-new';

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
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false })),
  /** Workers whose mounts were refreshed or that were restarted with the new material. */
  workers: Type.Array(Type.String()),
  latencyMs: Type.Optional(Type.Number({ minimum: 0 })),
  /** `rollback` for a rollback record (automatic after a failure, or requested); `rotate` otherwise. */
  operation: Type.Union([Type.Literal('rotate'), Type.Literal('rollback')]),
  /** The failed rotation an automatic rollback undoes. */
  rollbackOf: Type.Optional(Type.String()),
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
