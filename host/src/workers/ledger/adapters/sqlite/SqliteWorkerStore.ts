import Database from 'libsql';
import { claimTimes, judgeClaim, type StoredClaim } from '../../idempotency.ts';
import { normalizeListQuery, toPage } from '../../listQuery.ts';
import { recordExists, recordNotFound, storeClosed, storeFailure } from '../../ledgerErrors.ts';
import { applyPatch, applyTransition, assertRevision, decodeStoredRecord, newRecord } from '../../recordChanges.ts';
import type { IdempotencyClaim, IdempotencyResult, ListPage, ListQuery, PhaseCount, TransitionOptions, TransitionOutcome, WorkerStore, WriteOptions } from '../../WorkerStore.ts';
import type { LedgerPhase, LedgerState, NewWorkerRecord, WorkerRecord, WorkerRecordPatch } from '../../workerRecord.ts';
import { TERMINAL_PHASES } from '../../workerStateMachine.ts';
import { listSql } from './listSql.ts';
import { migrate } from './migrations.ts';

/** Options of {@link SqliteWorkerStore.open}. */
export interface SqliteWorkerStoreOptions {
  /** The database file (created if missing), normally `<stateDir>/workers.db`. */
  file: string;
  /** The store's clock, for timestamps and idempotency expiry; tests pass a fixed one. */
  now?: () => Date;
  /** How long a write waits for another process's lock before failing (SQLite busy timeout). */
  busyTimeoutMs?: number;
}

const TERMINAL = [...TERMINAL_PHASES];

/** Every fixed statement, prepared once per connection. */
function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare('SELECT record FROM workers WHERE id = ?'),
    insert: db.prepare(`INSERT INTO workers (id, tenant, owner, instance, phase, created_at, updated_at, finished_at, revision, record)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
    update: db.prepare(`UPDATE workers SET tenant = ?, owner = ?, instance = ?, phase = ?, created_at = ?, updated_at = ?, finished_at = ?,
      revision = ?, record = ? WHERE id = ?`),
    delete: db.prepare('DELETE FROM workers WHERE id = ?'),
    insertLabel: db.prepare('INSERT INTO worker_labels (worker_id, key, value) VALUES (?, ?, ?)'),
    deleteLabels: db.prepare('DELETE FROM worker_labels WHERE worker_id = ?'),
    purgeLabels: db.prepare(`DELETE FROM worker_labels WHERE worker_id IN
      (SELECT id FROM workers WHERE phase IN (${TERMINAL.map(() => '?').join(', ')}) AND finished_at < ?)`),
    purge: db.prepare(`DELETE FROM workers WHERE phase IN (${TERMINAL.map(() => '?').join(', ')}) AND finished_at < ?`),
    getClaim: db.prepare('SELECT request_hash, worker_id, expires_at FROM idempotency WHERE tenant = ? AND principal = ? AND key = ?'),
    putClaim: db.prepare('INSERT OR REPLACE INTO idempotency (tenant, principal, key, request_hash, worker_id, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
    purgeClaims: db.prepare('DELETE FROM idempotency WHERE expires_at <= ?'),
    countByPhase: db.prepare('SELECT instance, phase, COUNT(*) AS count FROM workers GROUP BY instance, phase ORDER BY instance, phase'),
  };
}

/**
 * The single-host worker ledger in one SQLite file (libsql: the better-sqlite3 API with prebuilt N-API binaries, so
 * one install serves every supported Node version). Every read-modify-write runs in one IMMEDIATE transaction, which
 * takes the write lock before reading, so compare-and-set holds even against another process on the same file.
 */
export class SqliteWorkerStore implements WorkerStore {
  readonly #db: Database.Database;
  readonly #now: () => Date;
  readonly #file: string;
  readonly #stmt: ReturnType<typeof prepareStatements>;
  #closed = false;

  private constructor(db: Database.Database, options: SqliteWorkerStoreOptions) {
    this.#db = db;
    this.#file = options.file;
    this.#now = options.now ?? (() => new Date());
    this.#stmt = prepareStatements(db);
  }

  /** Opens (creating if needed) and migrates the file; HOST_ERR_WORKER_STORE_CORRUPT if it is from a newer host. */
  static async open(options: SqliteWorkerStoreOptions): Promise<SqliteWorkerStore> {
    let db: Database.Database | undefined;
    try {
      db = new Database(options.file);
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5_000))}`);
      // WAL: readers never block the writer, and a commit is one append to the log.
      db.exec('PRAGMA journal_mode = WAL');
      // NORMAL, not FULL: in WAL mode a commit survives the host process crashing (SIGKILL) and the file is never
      // corrupted; only a power loss or kernel crash can drop the last commits. The ledger follows the providers,
      // which are the source of truth and are re-listed at start, so that loss is repaired by reconciliation, and
      // NORMAL saves an fsync on every state change.
      db.exec('PRAGMA synchronous = NORMAL');
      migrate(db, options.file);
      return new SqliteWorkerStore(db, options);
    } catch (error) {
      db?.close();
      throw storeFailure('sqlite', `open ${options.file}`, error);
    }
  }

  async create(input: NewWorkerRecord): Promise<WorkerRecord> {
    return this.#atomic('create a worker', () => {
      const r = newRecord(input, this.#now());
      const inserted = this.#stmt.insert.run(r.id, r.tenant, r.owner, r.instance, r.state.phase, r.createdAt, r.updatedAt, r.finishedAt ?? null, r.revision, JSON.stringify(r));
      if (inserted.changes === 0) throw recordExists(r.id);
      this.#writeLabels(r);
      return r;
    });
  }

  async get(id: string): Promise<WorkerRecord | undefined> {
    return this.#run('read a worker', () => this.#read(id));
  }

  async transition(id: string, to: LedgerState, options: TransitionOptions = {}): Promise<TransitionOutcome> {
    return this.#atomic('change a worker state', (): TransitionOutcome => {
      const current = this.#mustRead(id);
      assertRevision(current, options.expectedRevision);
      const now = this.#now();
      const change = applyTransition(current, to, options.at ?? now, now, options.providerRef);
      if (!change.ok) return { ...change, record: current };
      if (change.changed) this.#write(change.record, false);
      return { ok: true, record: change.record, changed: change.changed };
    });
  }

  async update(id: string, patch: WorkerRecordPatch, options: WriteOptions = {}): Promise<WorkerRecord> {
    return this.#atomic('update a worker', () => {
      const current = this.#mustRead(id);
      assertRevision(current, options.expectedRevision);
      const next = applyPatch(current, patch, this.#now());
      this.#write(next, patch.labels !== undefined);
      return next;
    });
  }

  async delete(id: string): Promise<boolean> {
    return this.#atomic('delete a worker', () => {
      this.#stmt.deleteLabels.run(id);
      return this.#stmt.delete.run(id).changes > 0;
    });
  }

  async list(query: ListQuery = {}): Promise<ListPage> {
    return this.#run('list workers', () => {
      const normalized = normalizeListQuery(query);
      const { sql, params } = listSql(normalized);
      const rows = this.#db.prepare(sql).all(...params) as Array<{ record: string }>;
      return toPage(rows.map((row) => decodeStoredRecord(row.record, `${this.#file}: a listed worker`)), normalized.limit);
    });
  }

  async purgeFinished(olderThan: Date): Promise<number> {
    const cutoff = olderThan.toISOString();
    return this.#atomic('purge finished workers', () => {
      this.#stmt.purgeLabels.run(...TERMINAL, cutoff);
      return this.#stmt.purge.run(...TERMINAL, cutoff).changes;
    });
  }

  async countByPhase(): Promise<PhaseCount[]> {
    return this.#run('count workers by phase', () =>
      (this.#stmt.countByPhase.all() as Array<{ instance: string; phase: LedgerPhase; count: number | bigint }>).map((row) => ({ instance: row.instance, phase: row.phase, count: Number(row.count) })),
    );
  }

  async claimIdempotency(claim: IdempotencyClaim): Promise<IdempotencyResult> {
    return this.#atomic('claim an idempotency key', (): IdempotencyResult => {
      const { now, expiresAt } = claimTimes(claim, this.#now);
      const row = this.#stmt.getClaim.get(claim.tenant, claim.principal, claim.key) as { request_hash: string; worker_id: string; expires_at: number } | undefined;
      const existing: StoredClaim | undefined = row === undefined ? undefined : { requestHash: row.request_hash, workerId: row.worker_id, expiresAt: Number(row.expires_at) };
      const answer = judgeClaim(existing, claim.requestHash, now);
      if (answer !== undefined) return answer;
      this.#stmt.putClaim.run(claim.tenant, claim.principal, claim.key, claim.requestHash, claim.workerId, expiresAt);
      return { status: 'new' };
    });
  }

  async purgeIdempotency(now: Date): Promise<number> {
    return this.#run('purge idempotency keys', () => this.#stmt.purgeClaims.run(now.getTime()).changes);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Keeps the planner's statistics current for the next open, at the cost of a quick analysis of changed tables.
    this.#db.exec('PRAGMA optimize');
    this.#db.close();
  }

  /** Runs one operation on an open store; an uncoded failure (SQLITE_BUSY, I/O) becomes HOST_ERR_WORKER_STORE_UNAVAILABLE. */
  #run<T>(operation: string, fn: () => T): T {
    if (this.#closed) throw storeClosed('sqlite');
    try {
      return fn();
    } catch (error) {
      throw storeFailure('sqlite', operation, error);
    }
  }

  /** {@link #run} inside an IMMEDIATE transaction: the write lock is taken before the read the write depends on. */
  #atomic<T>(operation: string, fn: () => T): T {
    return this.#run(operation, () => this.#db.transaction(fn).immediate());
  }

  #read(id: string): WorkerRecord | undefined {
    const row = this.#stmt.get.get(id) as { record: string } | undefined;
    return row === undefined ? undefined : decodeStoredRecord(row.record, `${this.#file}: worker ${id}`);
  }

  #mustRead(id: string): WorkerRecord {
    const record = this.#read(id);
    if (record === undefined) throw recordNotFound(id);
    return record;
  }

  #write(r: WorkerRecord, labelsChanged: boolean): void {
    this.#stmt.update.run(r.tenant, r.owner, r.instance, r.state.phase, r.createdAt, r.updatedAt, r.finishedAt ?? null, r.revision, JSON.stringify(r), r.id);
    if (!labelsChanged) return;
    this.#stmt.deleteLabels.run(r.id);
    this.#writeLabels(r);
  }

  #writeLabels(r: WorkerRecord): void {
    for (const [key, value] of Object.entries(r.labels)) this.#stmt.insertLabel.run(r.id, key, value);
  }
}
