import Type, { type Static } from 'typebox';

/** Output of a command run inside a worker. Output is capped by the provider; `truncated` says when it was. */
export const ExecutionResult = Type.Object(
  {
    exitCode: Type.Integer(),
    stdout: Type.String(),
    stderr: Type.String(),
    durationMs: Type.Number({ minimum: 0 }),
    timedOut: Type.Boolean(),
    truncated: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Execution result. */
export type ExecutionResult = Static<typeof ExecutionResult>;
