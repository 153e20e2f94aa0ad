import type Database from 'libsql';
import { hostError } from '../../../../errors.ts';

/** One schema step. `up` runs inside the opening transaction, after every earlier step. */
export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

/**
 * The schema history, oldest first; `PRAGMA user_version` holds the last one applied. Steps are never edited once
 * released, only appended: a file written by any earlier host must reach the current schema through them.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'workers: the record as JSON, with the columns listings sort and filter on',
    up: (db) => {
      db.exec(`
        CREATE TABLE workers (
          id TEXT PRIMARY KEY NOT NULL,
          tenant TEXT NOT NULL,
          owner TEXT NOT NULL,
          instance TEXT NOT NULL,
          phase TEXT NOT NULL,
          created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL,
          finished_at TEXT,
          revision INTEGER NOT NULL,
          record TEXT NOT NULL
        );
        CREATE INDEX workers_by_created ON workers (created_at, id);
      `);
    },
  },
  {
    version: 2,
    description: 'label side table, filter indexes, idempotency keys; records gain origin',
    up: (db) => {
      // Labels in their own rows so that a selector is an index lookup on (key, value) or on (worker_id, key), where
      // json_each over every record would parse the JSON of each candidate row. WITHOUT ROWID: the primary key is the
      // only access path, so the table is its own index.
      // Each filter index ends with (created_at, id) so a filtered page is read in order and stops at the limit.
      db.exec(`
        CREATE TABLE worker_labels (
          worker_id TEXT NOT NULL,
          key TEXT NOT NULL,
          value TEXT NOT NULL,
          PRIMARY KEY (worker_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX worker_labels_by_key_value ON worker_labels (key, value);
        INSERT INTO worker_labels (worker_id, key, value)
          SELECT w.id, l.key, l.value FROM workers w, json_each(w.record, '$.labels') l;
        CREATE INDEX workers_by_tenant ON workers (tenant, created_at, id);
        CREATE INDEX workers_by_instance ON workers (instance, created_at, id);
        CREATE INDEX workers_by_phase ON workers (phase, created_at, id);
        CREATE INDEX workers_by_finished ON workers (finished_at) WHERE finished_at IS NOT NULL;
        CREATE TABLE idempotency (
          tenant TEXT NOT NULL,
          principal TEXT NOT NULL,
          key TEXT NOT NULL,
          request_hash TEXT NOT NULL,
          worker_id TEXT NOT NULL,
          expires_at INTEGER NOT NULL,
          PRIMARY KEY (tenant, principal, key)
        ) WITHOUT ROWID;
        CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
      `);
      // Version 1 knew only workers created by request; adopted orphans came with origin.
      db.exec(`UPDATE workers SET record = json_set(record, '$.origin', 'request') WHERE json_extract(record, '$.origin') IS NULL`);
    },
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = migrations.length;

const userVersion = (db: Database.Database): number => Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);

/**
 * Brings the file to {@link SCHEMA_VERSION} in one IMMEDIATE transaction: all steps or none, and a second process
 * opening the same file at the same time waits, then finds the work done (the version is read inside the lock).
 * A file from a newer host is refused rather than written with a schema this code does not know.
 */
export function migrate(db: Database.Database, file: string): { from: number; to: number } {
  return db.transaction(() => {
    const from = userVersion(db);
    if (from > SCHEMA_VERSION) {
      throw hostError('HOST_ERR_WORKER_STORE_CORRUPT', `worker ledger ${file} has schema version ${from}; this host knows up to ${SCHEMA_VERSION}`, {
        details: { file, version: from, known: SCHEMA_VERSION },
      });
    }
    for (const step of migrations) {
      if (step.version <= from) continue;
      try {
        step.up(db);
      } catch (error) {
        throw hostError('HOST_ERR_WORKER_STORE_CORRUPT', `worker ledger ${file}: migration to version ${step.version} (${step.description}) failed: ${(error as Error).message}`, {
          cause: error,
          details: { file, version: step.version },
        });
      }
    }
    // PRAGMA takes no bound parameters; the value is an integer from this file, never input.
    if (from < SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    return { from, to: SCHEMA_VERSION };
  }).immediate();
}
