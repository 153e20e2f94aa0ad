import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SqliteWorkerStore } from './adapters/sqlite/SqliteWorkerStore.ts';
import type { WorkerStore } from './WorkerStore.ts';

/**
 * Opens the single-host ledger: the SQLite file (and its folder) under the state dir. The composition root calls it
 * after locking the state dir, so no second host ever opens the same file. The JetStream KV adapter is for the
 * distributed mode, where the ledger is shared by several replicas.
 */
export async function openWorkerStore(file: string): Promise<WorkerStore> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  return SqliteWorkerStore.open({ file });
}
