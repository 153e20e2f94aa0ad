import Type, { type Static } from 'typebox';

/** The worker ledger: where the host records every worker it owns, and how long it keeps finished ones. */
export const LedgerSettings = Type.Object(
  {
    file: Type.String({
      minLength: 1,
      default: 'ledger/workers.db',
      description: 'SQLite file of the ledger, relative to `host.stateDir`. Back it up with the rest of the state dir.',
    }),
    retentionMs: Type.Integer({
      minimum: 0,
      default: 86_400_000,
      description: 'How long, in ms, the record of a finished (Terminated or Failed) worker stays readable before it is purged.',
    }),
    idempotencyTtlMs: Type.Integer({
      minimum: 1_000,
      default: 86_400_000,
      description: 'How long, in ms, an `Idempotency-Key` is remembered per tenant and principal; a retry within it returns the first worker.',
    }),
    pollIntervalMs: Type.Integer({
      minimum: 100,
      default: 2_000,
      description: 'How often, in ms, the host asks a provider that emits no events (no `worker.events` capability) for the state of its live workers.',
    }),
    purgeIntervalMs: Type.Integer({
      minimum: 1_000,
      default: 60_000,
      description: 'How often, in ms, expired records and idempotency keys are purged.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'The worker ledger (one record per worker: spec, owner, state machine and history).' },
);
/** Ledger settings after defaults. */
export type LedgerSettings = Static<typeof LedgerSettings>;
