import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'libsql';
import { listSql } from '../../../../host/src/workers/ledger/adapters/sqlite/listSql.ts';
import { SCHEMA_VERSION } from '../../../../host/src/workers/ledger/adapters/sqlite/migrations.ts';
import { SqliteWorkerStore } from '../../../../host/src/workers/ledger/adapters/sqlite/SqliteWorkerStore.ts';
import { normalizeListQuery } from '../../../../host/src/workers/ledger/listQuery.ts';
import { newWorker, testClock } from './ledgerFixtures.ts';
import { workerStoreSuite } from './workerStoreSuite.ts';

let dir: string;
let files = 0;
const nextFile = (): string => path.join(dir, `ledger-${(files += 1)}.db`);

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wm-ledger-'));
});
after(() => rm(dir, { recursive: true, force: true }));

workerStoreSuite({
  name: 'sqlite',
  paginationRecords: 10_000,
  open: (now) => SqliteWorkerStore.open({ file: nextFile(), now }),
});

const raw = (file: string): Database.Database => new Database(file);
const scalar = (db: Database.Database, sql: string): unknown => Object.values(db.prepare(sql).get() as Record<string, unknown>)[0];

describe('SqliteWorkerStore file and schema', () => {
  it('migrates a file written by schema version 1 without losing a record, and keeps using it', async () => {
    const file = nextFile();
    // Schema version 1 as it was released, written here by hand: the test must not depend on the code it checks.
    const v1 = raw(file);
    v1.exec(`
      CREATE TABLE workers (id TEXT PRIMARY KEY NOT NULL, tenant TEXT NOT NULL, owner TEXT NOT NULL, instance TEXT NOT NULL,
        phase TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, finished_at TEXT, revision INTEGER NOT NULL,
        record TEXT NOT NULL);
      CREATE INDEX workers_by_created ON workers (created_at, id);
      PRAGMA user_version = 1;
    `);
    const old = ['old-1', 'old-2', 'old-3'].map((id, i) => {
      const at = `2029-01-0${i + 1}T00:00:00.000Z`;
      // Version 1 records had no origin field.
      return {
        id, tenant: 'tenant-a', owner: 'user:alice', instance: 'docker-1', labels: { team: i === 1 ? 'web' : 'ci' },
        spec: { image: 'local/busybox:latest' }, desired: 'Running', state: { phase: 'Running' }, timestamps: { Pending: at, Running: at },
        createdAt: at, updatedAt: at, restartCount: 0, history: [{ from: 'Pending', to: 'Running', at, revision: 2 }], revision: 2,
      };
    });
    const insert = v1.prepare('INSERT INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)');
    for (const r of old) insert.run(r.id, r.tenant, r.owner, r.instance, r.state.phase, r.createdAt, r.updatedAt, r.revision, JSON.stringify(r));
    v1.close();

    const store = await SqliteWorkerStore.open({ file, now: testClock().now });
    try {
      for (const r of old) assert.deepEqual(await store.get(r.id), { ...r, origin: 'request' });
      assert.deepEqual((await store.list()).items.map((r) => r.id), ['old-1', 'old-2', 'old-3']);
      assert.deepEqual((await store.list({ selector: 'team=web' })).items.map((r) => r.id), ['old-2'], 'labels of old records are indexed');
      const moved = await store.transition('old-1', { phase: 'Stopping' }, { expectedRevision: 2 });
      assert.ok(moved.ok);
      assert.equal(moved.record.history.length, 2);
      assert.deepEqual(await store.claimIdempotency({ tenant: 't', principal: 'p', key: 'k', requestHash: 'h', workerId: 'old-1', expiresAt: new Date('2031-01-01') }), { status: 'new' });
    } finally {
      await store.close();
    }
    const check = raw(file);
    assert.equal(scalar(check, 'PRAGMA user_version'), SCHEMA_VERSION);
    assert.equal(scalar(check, 'PRAGMA journal_mode'), 'wal');
    check.close();
  });

  it('refuses a file from a newer host with HOST_ERR_WORKER_STORE_CORRUPT, and leaves it untouched', async () => {
    const file = nextFile();
    const future = raw(file);
    future.exec('CREATE TABLE workers (id TEXT PRIMARY KEY); PRAGMA user_version = 99;');
    future.close();
    await assert.rejects(SqliteWorkerStore.open({ file }), { code: 'HOST_ERR_WORKER_STORE_CORRUPT' });
    const check = raw(file);
    assert.equal(scalar(check, 'PRAGMA user_version'), 99);
    assert.equal(scalar(check, "SELECT count(*) FROM sqlite_master WHERE name = 'worker_labels'"), 0);
    check.close();
  });

  it('reports a record another writer mangled instead of serving it', async () => {
    const file = nextFile();
    const store = await SqliteWorkerStore.open({ file });
    try {
      await store.create(newWorker('mangled'));
      const db = raw(file);
      db.prepare("UPDATE workers SET record = json_set(record, '$.state.phase', 'Sleeping') WHERE id = ?").run('mangled');
      db.close();
      await assert.rejects(store.get('mangled'), { code: 'HOST_ERR_WORKER_STORE_CORRUPT' });
      await assert.rejects(store.transition('mangled', { phase: 'Creating' }), { code: 'HOST_ERR_WORKER_STORE_CORRUPT' });
    } finally {
      await store.close();
    }
  });

  it('reports a write lock held by another process as HOST_ERR_WORKER_STORE_UNAVAILABLE (busy timeout 0); reads go on', async () => {
    const file = nextFile();
    const store = await SqliteWorkerStore.open({ file, busyTimeoutMs: 0 });
    const other = raw(file);
    try {
      await store.create(newWorker('locked'));
      // Another process in the middle of a write: the store must neither read a record it may not write nor wait.
      other.exec('BEGIN IMMEDIATE');
      await assert.rejects(store.transition('locked', { phase: 'Creating' }), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
      await assert.rejects(store.create(newWorker('locked-2')), { code: 'HOST_ERR_WORKER_STORE_UNAVAILABLE' });
      assert.equal((await store.get('locked'))?.revision, 1, 'reads go on under WAL');
      other.exec('COMMIT');
      assert.ok((await store.transition('locked', { phase: 'Creating' })).ok);
    } finally {
      other.close();
      await store.close();
    }
  });

  it('reads pages through an index in (created_at, id) order, never sorting the table', async () => {
    const file = nextFile();
    await (await SqliteWorkerStore.open({ file })).close();
    const db = raw(file);
    try {
      const plan = (query: Parameters<typeof normalizeListQuery>[0]): string => {
        const { sql, params } = listSql(normalizeListQuery(query));
        return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
      };
      const cursor = 'WyJ3bDEiLCIyMDMwLTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ3LTEiXQ';
      for (const [query, index] of [
        [{}, 'workers_by_created'],
        [{ order: 'desc', cursor }, 'workers_by_created'],
        [{ tenant: 't' }, 'workers_by_tenant'],
        [{ instance: 'i', cursor }, 'workers_by_instance'],
        [{ phases: ['Running'] }, 'workers_by_phase'],
      ] as const) {
        const p = plan(query);
        assert.match(p, new RegExp(`USING (COVERING )?INDEX ${index}`), `${JSON.stringify(query)}: ${p}`);
        assert.doesNotMatch(p, /TEMP B-TREE/, `${JSON.stringify(query)} must not sort: ${p}`);
      }
      const selector = plan({ selector: 'team=a,!tier' });
      assert.match(selector, /worker_labels/, selector);
      assert.doesNotMatch(selector, /SCAN worker_labels|SCAN l\b/, `label lookups go through an index: ${selector}`);
    } finally {
      db.close();
    }
  });
});
