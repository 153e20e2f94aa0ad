import type { Principal } from '../Principal.ts';

/** One audit record; never a secret value, only names, versions and ids. */
export interface AuditEntry {
  /**
   * What happened: an authorization decision, a secret release, a rotation step, a rollback, a plugin event about
   * a worker its instance does not own (dropped), or an operator's reset of the audit chain (`wm audit reset`, the
   * first record of the new chain).
   */
  kind: 'authz.decision' | 'secret.release' | 'secret.rotation' | 'secret.rollback' | 'plugin.foreign_event' | 'audit.reset';
  /** Who; `source: 'cli'` is an operator at the machine (`wm audit reset`), named by OS user. */
  principal: Pick<Principal, 'id' | 'kind' | 'tenant'> & { source: Principal['source'] | 'cli' };
  action: string;
  /** `Type::id`, e.g. `Worker::w-1`, `Secret::secrets/db-password`. */
  resource: string;
  decision?: 'allow' | 'deny';
  /** Policies that determined an authorization decision. */
  policies?: string[];
  result?: 'ok' | 'error';
  correlationId?: string;
  /** Kind-specific facts: provider, worker ids, previous/new version, latency, error code. */
  details?: Record<string, unknown>;
}

/**
 * How far a record must have gone before `record()` resolves.
 * - `durable` (the default): written and fdatasynced: it survives a power loss. For everything that acts (a grant
 *   before a change, a denial, a secret release, a rotation step).
 * - `written`: written to the log file (it survives the host process dying, not the machine losing power); the sync
 *   follows within the log's sync lag, in the same group commit as other records. For reads that change nothing, so
 *   a sequential reader does not pay one fsync per call.
 */
export type AuditDurability = 'durable' | 'written';

/** Where audit records go (the hash-chained log in the state dir, and the bus). Appends never reorder or drop. */
export interface AuditSink {
  record(entry: AuditEntry, options?: { until?: AuditDurability }): Promise<void>;
}
