import { Type, type Static } from '@worker-manager/plugin-sdk';

const EnvName = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' });

/** Instance config of the process provider. Every field is optional; the defaults suit a CI runner host. */
export const ProcessConfig = Type.Object(
  {
    maxWorkers: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, default: 64, description: 'workers that may run at once' })),
    defaultGracePeriodMs: Type.Optional(Type.Integer({ minimum: 0, default: 5_000, description: 'SIGTERM to SIGKILL delay when terminateWorker gives none' })),
    passEnv: Type.Optional(Type.Array(EnvName, { default: ['PATH'], description: "variables of the plugin's own environment passed on to workers" })),
    maxExecOutputBytes: Type.Optional(Type.Integer({ minimum: 1_024, default: 1_048_576, description: 'cap on stdout and on stderr of executeCommand' })),
    retainFinishedMs: Type.Optional(Type.Integer({ minimum: 0, default: 86_400_000, description: 'how long folders (logs) of finished workers are kept' })),
    pollIntervalMs: Type.Optional(Type.Integer({ minimum: 20, maximum: 10_000, default: 200, description: 'how often a thread checks the workers it watches' })),
    leaseStaleMs: Type.Optional(Type.Integer({ minimum: 2_000, default: 5_000, description: 'after this long without a heartbeat, another thread takes over watching a worker' })),
  },
  { additionalProperties: false },
);
/** Process provider config as the host passes it (defaults usually applied). */
export type ProcessConfig = Static<typeof ProcessConfig>;

/** The config with every default filled in. */
export type ResolvedConfig = Required<ProcessConfig>;

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(config: ProcessConfig): ResolvedConfig {
  return {
    maxWorkers: config.maxWorkers ?? 64,
    defaultGracePeriodMs: config.defaultGracePeriodMs ?? 5_000,
    passEnv: config.passEnv ?? ['PATH'],
    maxExecOutputBytes: config.maxExecOutputBytes ?? 1_048_576,
    retainFinishedMs: config.retainFinishedMs ?? 86_400_000,
    pollIntervalMs: config.pollIntervalMs ?? 200,
    leaseStaleMs: config.leaseStaleMs ?? 5_000,
  };
}
