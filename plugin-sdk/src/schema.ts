/**
 * typebox, re-exported so that plugins declare their config schema (and any other shape) with the same typebox the
 * SDK's contracts use, while importing nothing but `@worker-manager/plugin-sdk`.
 *
 * @example
 * import { Type, type Static } from '@worker-manager/plugin-sdk';
 * const Config = Type.Object({ maxWorkers: Type.Optional(Type.Integer({ minimum: 1, default: 64 })) });
 * type Config = Static<typeof Config>;
 */
export { default as Type } from 'typebox';
/** The static TypeScript type of a typebox schema, and the base type of every schema. */
export type { Static, TSchema } from 'typebox';
