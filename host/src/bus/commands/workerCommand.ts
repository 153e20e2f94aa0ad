import { createHash } from 'node:crypto';
import Type, { type Static } from 'typebox';

/** Every WorkerProvider operation a caller can drive over the bus, as `<prefix>.worker.cmd.<operation>`. */
export const WORKER_OPERATIONS = ['create', 'terminate', 'status', 'list', 'exec', 'pause', 'resume', 'restart', 'capacity'] as const;
/** A command operation. */
export type WorkerOperation = (typeof WORKER_OPERATIONS)[number];

/** A command as it travels on `<prefix>.worker.cmd.<operation>`. */
export const WorkerCommand = Type.Object(
  {
    operation: Type.Union([
      Type.Literal('create'), Type.Literal('terminate'), Type.Literal('status'), Type.Literal('list'), Type.Literal('exec'),
      Type.Literal('pause'), Type.Literal('resume'), Type.Literal('restart'), Type.Literal('capacity'),
    ]),
    /** Chosen by the caller; a repeated command with the same key gets the first result and is not run again. */
    idempotencyKey: Type.String({ minLength: 1, maxLength: 256 }),
    params: Type.Record(Type.String(), Type.Unknown()),
    correlationId: Type.Optional(Type.String()),
    tenant: Type.Optional(Type.String()),
    /**
     * The caller's credentials: an access token (Keycloak) or the local admin token, checked like an API request's
     * `Authorization: Bearer`. Absent: the command runs as the host service identity if `serviceIdentity.commands` is
     * on, and is refused otherwise.
     */
    auth: Type.Optional(Type.Object({ token: Type.String({ minLength: 1, maxLength: 16_384 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
/** A worker command. */
export type WorkerCommand = Static<typeof WorkerCommand>;

/** The answer to a command; errors carry the same codes as the API (`WorkerManagerError.toJSON()`). */
export const CommandReply = Type.Union([
  Type.Object({ ok: Type.Literal(true), result: Type.Unknown() }),
  Type.Object({ ok: Type.Literal(false), error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }) }),
]);
/** A command reply. */
export type CommandReply = Static<typeof CommandReply>;

/** Subject-safe token for an idempotency key (keys are caller text; subjects allow only some characters). */
export function idempotencyToken(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 40);
}

/**
 * The worker id a create command gets when the caller names none: derived from the idempotency key, so that a replica
 * taking over a command whose first executor died can tell whether the worker was already created.
 */
export function workerIdForKey(key: string): string {
  return `w-${idempotencyToken(key).slice(0, 20)}`;
}
