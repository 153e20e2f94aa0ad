import Type, { type Static } from 'typebox';

/**
 * Why an accepted worker is not running yet: `ImagePull`, `Unschedulable`, `ContainerCreating`, `Provisioning`, or a
 * provider's own word in the same form (an UpperCamelCase token, so it can be filtered and counted).
 */
export const PendingReason = Type.String({ pattern: '^[A-Z][A-Za-z0-9]{0,63}$' });
/** A pending reason. */
export type PendingReason = Static<typeof PendingReason>;

/**
 * Worker lifecycle states. `Creating`: the provider is making the worker. `Starting`: the infrastructure accepted it
 * and it waits (for an image pull, for a node), with the reason when the provider knows it. Failed carries its reason
 * (for example `OOMKilled`).
 */
export const WorkerState = Type.Union([
  Type.Object({ phase: Type.Literal('Creating') }, { additionalProperties: false }),
  Type.Object({ phase: Type.Literal('Starting'), pendingReason: Type.Optional(PendingReason) }, { additionalProperties: false }),
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
