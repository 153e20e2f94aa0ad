import Type, { type Static } from 'typebox';
import { Timestamp, WorkerId } from './common.ts';
import { WorkerState } from './workerState.ts';

/** Lifecycle events a provider emits. */
export const WorkerEvent = Type.Union([
  Type.Object({ type: Type.Literal('WorkerCreated'), workerId: WorkerId, providerRef: Type.Optional(Type.String()), timestamp: Timestamp }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('WorkerStateChanged'), workerId: WorkerId, oldState: WorkerState, newState: WorkerState, timestamp: Timestamp }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('WorkerTerminated'), workerId: WorkerId, exitCode: Type.Optional(Type.Integer()), timestamp: Timestamp }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('WorkerFailed'), workerId: WorkerId, reason: Type.String(), timestamp: Timestamp }, { additionalProperties: false }),
]);
/** Worker event. */
export type WorkerEvent = Static<typeof WorkerEvent>;
