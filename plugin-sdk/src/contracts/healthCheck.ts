import Type, { type Static } from 'typebox';
import { CommandLine } from './common.ts';
import { MAX_PATH_LENGTH, MAX_TIMER_MS } from './limits.ts';

const Timing = {
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: MAX_TIMER_MS })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: MAX_TIMER_MS })),
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
  startPeriodMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMER_MS })),
};

/** How the provider decides a worker is healthy: an HTTP GET, a TCP connect or a command's exit code. */
export const HealthCheckConfig = Type.Union([
  Type.Object({ type: Type.Literal('http'), port: Type.Integer({ minimum: 1, maximum: 65535 }), path: Type.String({ maxLength: MAX_PATH_LENGTH, pattern: '^/[^\\u0000]*$' }), ...Timing }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('tcp'), port: Type.Integer({ minimum: 1, maximum: 65535 }), ...Timing }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('command'), command: CommandLine, ...Timing }, { additionalProperties: false }),
]);
/** Health check. */
export type HealthCheckConfig = Static<typeof HealthCheckConfig>;
