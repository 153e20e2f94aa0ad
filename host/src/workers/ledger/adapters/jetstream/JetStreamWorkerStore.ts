import { createHash } from 'node:crypto';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { WorkerId } from '@worker-manager/plugin-sdk';
import { Compile } from 'typebox/compile';
import { hostError } from '../../../../errors.ts';
import { claimTimes, judgeClaim, type StoredClaim } from '../../idempotency.ts';
import { normalizeListQuery, pageInMemory } from '../../listQuery.ts';
import { recordExists, recordNotFound, storeClosed, storeFailure } from '../../ledgerErrors.ts';
import { applyPatch, applyTransition, assertRevision, decodeStoredRecord, newRecord } from '../../recordChanges.ts';
import type { IdempotencyClaim, IdempotencyResult, ListPage, ListQuery, PhaseCount, TransitionOptions, TransitionOutcome, WorkerStore, WriteOptions } from '../../WorkerStore.ts';
import type { LedgerState, NewWorkerRecord, WorkerRecord, WorkerRecordPatch } from '../../workerRecord.ts';
import { TERMINAL_PHASES } from '../../workerStateMachine.ts';
import { isRevisionMismatch, scanBucket } from './kvScan.ts';

/** Options of {@link JetStreamWorkerStore.open}. */
export interface JetStreamWorkerStoreOptions {
  /** A connection the caller owns (normally the bus's); close() leaves it open. */
  connection: NatsConnection;
  /** Buckets are `<prefix>_workers` and `<prefix>_idempotency`; one prefix per deployment. Default `wm`. */
  bucketPrefix?: string;
  /** Copies of each bucket in a JetStream cluster. Default 1. */
  replicas?: number;
  /**
   * Reads and compare-and-set writes one change may take when other writers keep getting in first. With k writers on
   * one record, k attempts always suffice (each failed attempt means another writer succeeded). Default 16.
   */
  maxCasAttempts?: number;
  /** The store's clock, for timestamps and idempotency expiry; tests pass a fixed one. */
  now?: () => Date;
}

/** One step of a read-modify-write: the value to write (none: nothing to write) and what the caller gets back. */
interface Step<T> {
  write?: WorkerRecord;
  result: T;
}

const isWorkerId = Compile(WorkerId);

const live = (entry: KvEntry | null): entry is KvEntry => entry !== null && entry.operation === 'PUT';

/**
 * The worker ledger in JetStream KV, for hosts sharing one ledger. Records live in `<prefix>_workers` keyed by worker
 * id (a DNS label, always a valid KV key), one message per key (history 1). Every change is read, computed by the
 * same pure functions as the SQLite adapter, and written with `update(key, value, revision)`: the server refuses it
 * if anyone wrote the key since the read, and the change is recomputed on the fresh record, a bounded number of
 * times. Idempotency claims live in `<prefix>_idempotency` under a hash of (tenant, principal, key), claimed with
 * `create` (atomic: only one writer can create a key).
 *
 * list() and the purges scan the whole bucket: O(n) per call, fine for the thousands of records a test or a small
 * deployment holds; distributed mode will add index keys. Deleted keys leave a delete marker behind (history 1).
 */
export class JetStreamWorkerStore implements WorkerStore {
  readonly #js: JetStreamClient;
  readonly #workers: KV;
  readonly #claims: KV;
  readonly #names: { workers: string; claims: string };
  readonly #maxAttempts: number;
  readonly #now: () => Date;
  #closed = false;

  private constructor(js: JetStreamClient, buckets: { workers: KV; claims: KV }, names: { workers: string; claims: string }, options: JetStreamWorkerStoreOptions) {
    this.#js = js;
    this.#workers = buckets.workers;
    this.#claims = buckets.claims;
    this.#names = names;
    this.#maxAttempts = Math.max(1, options.maxCasAttempts ?? 16);
    this.#now = options.now ?? (() => new Date());
  }

  /** Creates the buckets if missing (or binds to existing ones); HOST_ERR_WORKER_STORE_UNAVAILABLE if JetStream is not reachable. */
  static async open(options: JetStreamWorkerStoreOptions): Promise<JetStreamWorkerStore> {
    const prefix = options.bucketPrefix ?? 'wm';
    const names = { workers: `${prefix}_workers`, claims: `${prefix}_idempotency` };
    try {
      const js = jetstream(options.connection);
      const kvm = new Kvm(js);
      const replicas = options.replicas ?? 1;
      const workers = await kvm.create(names.workers, { history: 1, replicas, description: 'worker-manager worker ledger' });
      const claims = await kvm.create(names.claims, { history: 1, replicas, description: 'worker-manager idempotency keys' });
      return new JetStreamWorkerStore(js, { workers, claims }, names, options);
    } catch (error) {
      throw hostError('HOST_ERR_WORKER_STORE_UNAVAILABLE', `cannot open the worker ledger buckets ${names.workers}, ${names.claims}: ${(error as Error).message}`, {
        cause: error,
        details: { buckets: [names.workers, names.claims] },
      });
    }
  }

  async create(input: NewWorkerRecord): Promise<WorkerRecord> {
    return this.#run('create a worker', async () => {
      const record = newRecord(input, this.#now());
      try {
        await this.#workers.create(record.id, JSON.stringify(record));
      } catch (error) {
        if (isRevisionMismatch(error)) throw recordExists(record.id);
        throw error;
      }
      return record;
    });
  }

  async get(id: string): Promise<WorkerRecord | undefined> {
    return this.#run('read a worker', async () => {
      // Anything else cannot be a key of the bucket (the KV client would throw); SQLite answers such ids with "none" too.
      if (!isWorkerId.Check(id)) return undefined;
      const entry = await this.#workers.get(id);
      return live(entry) ? this.#decode(entry.string(), id) : undefined;
    });
  }

  async transition(id: string, to: LedgerState, options: TransitionOptions = {}): Promise<TransitionOutcome> {
    return this.#change('change a worker state', id, (current): Step<TransitionOutcome> => {
      assertRevision(current, options.expectedRevision);
      const now = this.#now();
      const change = applyTransition(current, to, options.at ?? now, now, options.providerRef);
      if (!change.ok) return { result: { ...change, record: current } };
      if (!change.changed) return { result: { ok: true, record: current, changed: false } };
      return { write: change.record, result: { ok: true, record: change.record, changed: true } };
    });
  }

  async update(id: string, patch: WorkerRecordPatch, options: WriteOptions = {}): Promise<WorkerRecord> {
    return this.#change('update a worker', id, (current) => {
      assertRevision(current, options.expectedRevision);
      const next = applyPatch(current, patch, this.#now());
      return { write: next, result: next };
    });
  }

  async delete(id: string): Promise<boolean> {
    return this.#run('delete a worker', async () => {
      if (!isWorkerId.Check(id) || !live(await this.#workers.get(id))) return false;
      await this.#workers.delete(id);
      return true;
    });
  }

  async list(query: ListQuery = {}): Promise<ListPage> {
    return this.#run('list workers', async () => {
      const normalized = normalizeListQuery(query);
      const rows = await scanBucket(this.#js, this.#names.workers);
      return pageInMemory(rows.map((row) => this.#decode(row.value, row.key)), normalized);
    });
  }

  async countByPhase(): Promise<PhaseCount[]> {
    return this.#run('count workers by phase', async () => {
      const counts = new Map<string, PhaseCount>();
      for (const row of await scanBucket(this.#js, this.#names.workers)) {
        const record = this.#decode(row.value, row.key);
        const key = `${record.instance}\u0000${record.state.phase}`;
        const entry = counts.get(key) ?? { instance: record.instance, phase: record.state.phase, count: 0 };
        entry.count += 1;
        counts.set(key, entry);
      }
      return [...counts.values()].sort((a, b) => (a.instance === b.instance ? a.phase.localeCompare(b.phase) : a.instance.localeCompare(b.instance)));
    });
  }

  async purgeFinished(olderThan: Date): Promise<number> {
    return this.#run('purge finished workers', async () => {
      const cutoff = olderThan.toISOString();
      let purged = 0;
      for (const row of await scanBucket(this.#js, this.#names.workers)) {
        const record = this.#decode(row.value, row.key);
        if (!TERMINAL_PHASES.has(record.state.phase) || record.finishedAt === undefined || record.finishedAt >= cutoff) continue;
        // Conditional on the scanned revision: a record deleted and created again under the same id meanwhile stays.
        if (await this.#deleteAt(this.#workers, row.key, row.revision)) purged += 1;
      }
      return purged;
    });
  }

  async claimIdempotency(claim: IdempotencyClaim): Promise<IdempotencyResult> {
    return this.#run('claim an idempotency key', async () => {
      const { now, expiresAt } = claimTimes(claim, this.#now);
      const key = claimKey(claim);
      const value = JSON.stringify({ requestHash: claim.requestHash, workerId: claim.workerId, expiresAt } satisfies StoredClaim);
      for (let attempt = 0; attempt < this.#maxAttempts; attempt += 1) {
        const entry = await this.#claims.get(key);
        const existing = live(entry) ? (JSON.parse(entry.string()) as StoredClaim) : undefined;
        const answer = judgeClaim(existing, claim.requestHash, now);
        if (answer !== undefined) return answer;
        try {
          // Absent: only one concurrent create wins. Expired: replaced only if nobody replaced it since the read.
          if (live(entry)) await this.#claims.update(key, value, entry.revision);
          else await this.#claims.create(key, value);
          return { status: 'new' } as const;
        } catch (error) {
          if (!isRevisionMismatch(error)) throw error;
        }
      }
      throw this.#contended(`idempotency key ${claim.key}`);
    });
  }

  async purgeIdempotency(now: Date): Promise<number> {
    return this.#run('purge idempotency keys', async () => {
      let purged = 0;
      for (const row of await scanBucket(this.#js, this.#names.claims)) {
        const stored = JSON.parse(row.value) as StoredClaim;
        if (stored.expiresAt <= now.getTime() && (await this.#deleteAt(this.#claims, row.key, row.revision))) purged += 1;
      }
      return purged;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Runs one operation on an open store; an uncoded failure (timeout, connection closed) becomes HOST_ERR_WORKER_STORE_UNAVAILABLE. */
  async #run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw storeClosed('jetstream');
    try {
      return await fn();
    } catch (error) {
      throw storeFailure('jetstream', operation, error);
    }
  }

  #decode(json: string, key: string): WorkerRecord {
    return decodeStoredRecord(json, `KV bucket ${this.#names.workers} key ${key}`);
  }

  /** Read, compute, compare-and-set write; recomputed on a fresh read when another writer got in first. */
  async #change<T>(operation: string, id: string, compute: (current: WorkerRecord) => Step<T>): Promise<T> {
    return this.#run(operation, async () => {
      if (!isWorkerId.Check(id)) throw recordNotFound(id);
      for (let attempt = 0; attempt < this.#maxAttempts; attempt += 1) {
        const entry = await this.#workers.get(id);
        if (!live(entry)) throw recordNotFound(id);
        const step = compute(this.#decode(entry.string(), id));
        if (step.write === undefined) return step.result;
        try {
          await this.#workers.update(id, JSON.stringify(step.write), entry.revision);
          return step.result;
        } catch (error) {
          if (!isRevisionMismatch(error)) throw error;
        }
      }
      throw this.#contended(`worker ${id}`);
    });
  }

  /** Deletes `key` if it is still at `revision`; false if it moved on. */
  async #deleteAt(kv: KV, key: string, revision: number): Promise<boolean> {
    try {
      await kv.delete(key, { previousSeq: revision });
      return true;
    } catch (error) {
      if (isRevisionMismatch(error)) return false;
      throw error;
    }
  }

  #contended(what: string): Error {
    return hostError('HOST_ERR_WORKER_REVISION_CONFLICT', `${what} kept changing under ${this.#maxAttempts} compare-and-set attempts`, {
      details: { what, attempts: this.#maxAttempts },
    });
  }
}

/** The KV key of a claim: a hash, because tenants, principals and keys may hold characters a KV key may not. */
function claimKey(claim: IdempotencyClaim): string {
  return createHash('sha256').update(JSON.stringify([claim.tenant, claim.principal, claim.key])).digest('hex');
}
