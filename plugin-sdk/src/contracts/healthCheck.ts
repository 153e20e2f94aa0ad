import Type, { type Static } from 'typebox';

const Timing = {
  intervalMs: Type.Optional(Type.Integer({ minimum: 100 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 10 })),
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  startPeriodMs: Type.Optional(Type.Integer({ minimum: 0 })),
};

/** How the provider decides a worker is healthy: an HTTP GET, a TCP connect or a command's exit code. */
export const HealthCheckConfig = Type.Union([
  Type.Object({ type: Type.Literal('http'), port: Type.Integer({ minimum: 1, maximum: 65535 }), path: Type.String({ pattern: '^/' }), ...Timing }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('tcp'), port: Type.Integer({ minimum: 1, maximum: 65535 }), ...Timing }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('command'), command: Type.Array(Type.String(), { minItems: 1 }), ...Timing }, { additionalProperties: false }),
]);
/** Health check. */
export type HealthCheckConfig = Static<typeof HealthCheckConfig>;
