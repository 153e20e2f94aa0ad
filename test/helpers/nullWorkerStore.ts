import type { IdempotencyResult, ListPage, PhaseCount, TransitionOutcome, WorkerStore } from '../../host/src/workers/ledger/WorkerStore.ts';
import { recordNotFound } from '../../host/src/workers/ledger/ledgerErrors.ts';
import type { NewWorkerRecord, WorkerRecord } from '../../host/src/workers/ledger/workerRecord.ts';

/**
 * A ledger that keeps nothing: creates answer a record and forget it, every lookup misses, every key is new. The
 * baseline of the ledger benchmark: the same host path minus the store's own work.
 */
export class NullWorkerStore implements WorkerStore {
  async create(input: NewWorkerRecord): Promise<WorkerRecord> {
    const now = new Date().toISOString();
    return {
      id: input.id, tenant: input.tenant, owner: input.owner, instance: input.instance, labels: input.labels ?? {}, spec: input.spec,
      desired: input.desired ?? 'Running', state: input.state ?? { phase: 'Pending' }, timestamps: {}, createdAt: input.createdAt ?? now, updatedAt: now,
      restartCount: input.restartCount ?? 0, origin: input.origin ?? 'request', history: [], revision: 1,
    };
  }
  async get(): Promise<undefined> {
    return undefined;
  }
  async transition(id: string): Promise<TransitionOutcome> {
    throw recordNotFound(id);
  }
  async update(id: string): Promise<WorkerRecord> {
    throw recordNotFound(id);
  }
  async delete(): Promise<boolean> {
    return false;
  }
  async list(): Promise<ListPage> {
    return { items: [] };
  }
  async purgeFinished(): Promise<number> {
    return 0;
  }
  async countByPhase(): Promise<PhaseCount[]> {
    return [];
  }
  async claimIdempotency(): Promise<IdempotencyResult> {
    return { status: 'new' };
  }
  async purgeIdempotency(): Promise<number> {
    return 0;
  }
  async close(): Promise<void> {}
}
