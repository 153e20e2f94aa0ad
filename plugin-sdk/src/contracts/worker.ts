import Type, { type Static } from 'typebox';
import { Timestamp, WorkerId, WorkerLabels } from './common.ts';
import { WorkerState } from './workerState.ts';

/** A worker as a provider reports it. `providerRef` is the provider's own handle (pid, container id, pod name). */
export const Worker = Type.Object(
  {
    workerId: WorkerId,
    state: WorkerState,
    labels: WorkerLabels,
    createdAt: Timestamp,
    providerRef: Type.Optional(Type.String()),
    endpoints: Type.Optional(Type.Array(Type.Object({ name: Type.Optional(Type.String()), address: Type.String() }, { additionalProperties: false }))),
  },
  { additionalProperties: false },
);
/** Worker description. */
export type Worker = Static<typeof Worker>;
