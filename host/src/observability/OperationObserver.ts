/**
 * One finished host operation (a worker call, a secret operation, an API-level action). The per-operation log line,
 * the Prometheus metrics and the audit trail are all built from these records, so every surface counts the same thing.
 * Never carries a secret value: only names, versions and ids.
 */
export interface OperationRecord {
  /** Operation name, e.g. `createWorker`, `terminateWorker`, `executeCommand`, `rotateSecret`. */
  op: string;
  /** Provider or credential instance that served it, when one did. */
  instance?: string;
  /** Plugin id of that instance, when known. */
  plugin?: string;
  workerId?: string;
  correlationId?: string;
  tenant?: string;
  result: 'ok' | 'error';
  /** Error category and stable code, for failures. */
  category?: string;
  code?: string;
  latencyMs: number;
  /** Secret name, for secret operations (`rotateSecret`, `rollbackSecret`): a name, never a value. */
  secret?: string;
  /** What started the operation, for rotations: `time`, `event` or `manual`. */
  trigger?: string;
}

/** Receives every finished operation; must not throw and must not block (it runs on the hot path). */
export type OperationObserver = (record: OperationRecord) => void;
