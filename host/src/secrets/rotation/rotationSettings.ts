import Type, { type Static } from 'typebox';

/** Rotation engine settings: policies, triggers, parallelism. */
export const RotationSettings = Type.Object(
  {},
  { additionalProperties: false, default: {}, description: 'Secret rotation engine: policies, triggers and limits.' },
);
/** Rotation settings after defaults. */
export type RotationSettings = Static<typeof RotationSettings>;
