import Type, { type Static } from 'typebox';
import { ResourceAmounts } from './resourceQuota.ts';

/** Capacity of a provider instance: what it has, what its workers use, what is left. */
export const CapacityInfo = Type.Object(
  {
    total: ResourceAmounts,
    used: ResourceAmounts,
    available: ResourceAmounts,
    activeWorkers: Type.Integer({ minimum: 0 }),
    maxWorkers: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
/** Capacity report. */
export type CapacityInfo = Static<typeof CapacityInfo>;
