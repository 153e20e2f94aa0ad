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
    reconcileIntervalMs: Type.Integer({
      minimum: 1_000,
      default: 30_000,
      description: 'How often, in ms, each running provider instance\'s listing is compared with the ledger after the comparison at start: a change an event missed is applied (`worker_drift_total{kind="state"}`), a live worker its provider no longer has fails with `Lost`, and a running worker with no record is handled by the instance\'s `orphans` policy.',
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
