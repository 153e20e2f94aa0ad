import type { LedgerPhase, LedgerState, NewWorkerRecord, WorkerStore } from '../../../../host/src/workers/ledger/index.ts';

/** How the shared suite gets a store of one adapter; each call is an empty, independent store. */
export interface StoreHarness {
  /** Adapter name, for test titles. */
  name: string;
  open(now: () => Date): Promise<WorkerStore>;
  /** Records in the pagination data set: 10,000 on SQLite; fewer where list() scans (KV). */
  paginationRecords: number;
}

/** A clock the test moves by hand, so that expiry and timestamps never depend on real time passing. */
export interface TestClock {
  now: () => Date;
  /** Moves the clock forward and returns the new time. */
  advance(ms: number): Date;
}

/** A clock starting at `start`. */
export function testClock(start = '2030-01-01T00:00:00.000Z'): TestClock {
  let ms = Date.parse(start);
  return {
    now: () => new Date(ms),
    advance: (by) => new Date((ms += by)),
  };
}

/** A valid new worker; the spec carries a secret reference (name and version, no value) as a real one would. */
export function newWorker(id: string, extra: Partial<NewWorkerRecord> = {}): NewWorkerRecord {
  return {
    id,
    tenant: 'tenant-a',
    owner: 'user:alice',
    instance: 'docker-1',
    labels: { team: 'ci' },
    spec: {
      image: 'local/busybox:latest',
      command: ['sleep', '30'],
      secretRefs: [{ name: 'db-password', version: '3', mount: 'env', envName: 'DB_PASSWORD' }],
    },
    ...extra,
  };
}

/** A state in `phase` that the store accepts (Failed needs a reason). */
export function stateIn(phase: LedgerPhase): LedgerState {
  return phase === 'Failed' ? { phase, reason: 'Lost' } : { phase };
}
