import Type, { type Static } from 'typebox';

/** Worker lifecycle states (seed 000): Failed carries its reason (for example `OOMKilled`). */
export const WorkerState = Type.Union([
  Type.Object({ phase: Type.Literal('Creating') }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Running') }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Paused') }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Terminating') }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Terminated'), exitCode: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Failed'), reason: Type.String({ minLength: 1 }), exitCode: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Unknown') }, { additionalProperties: false }),
]);
/** Worker state. */
export type WorkerState = Static<typeof WorkerState>;
/** The phase names. */
export type WorkerPhase = WorkerState['phase'];

/** True for states a worker never leaves. */
export function isFinalState(state: WorkerState): boolean {
  return state.phase === 'Terminated' || state.phase === 'Failed';
}
