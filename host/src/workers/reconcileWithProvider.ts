import type { Worker } from '@worker-manager/plugin-sdk';
import type { Logger } from '../observability/logger.ts';
import { TERMINAL_PHASES, type LedgerPhase } from './ledger/index.ts';
import { ANONYMOUS, CREATE_FAILED, DEFAULT_TENANT, ledgerStateOfWorker, type WorkerLedger } from './WorkerLedger.ts';
import { OWNER_LABEL, TENANT_LABEL } from './workerLabels.ts';

/** Phases of a record whose worker should exist on its provider. */
const LIVE_PHASES: LedgerPhase[] = ['Pending', 'Creating', 'Starting', 'Running', 'Degraded', 'Recovering', 'Paused', 'Stopping', 'Unknown'];

/** Phases of a record whose create call had not been answered: the host's create was still running it. */
const CREATE_PHASES: ReadonlySet<LedgerPhase> = new Set<LedgerPhase>(['Pending', 'Creating']);
/** Provider phases of a worker that exists but has not started. */
const NOT_STARTED: ReadonlySet<string> = new Set(['Creating', 'Starting']);

/** What reconciliation needs: the ledger, and a way to terminate a worker on the instance being reconciled. */
export interface ReconcileDeps {
  ledger: WorkerLedger;
  logger: Logger;
  terminate(workerId: string): Promise<unknown>;
}

/**
 * Makes the ledger and one provider's listing agree at start. A worker the ledger knows and the provider runs is
 * adopted (its state brought up to date), or terminated if its record had already ended (a create that failed but
 * made it). One the provider reports as not started yet (Creating, Starting) while its record says the host's create
 * call had not been answered (a container made but never started) was left half-made by the host's stop: nothing may
 * ever finish it, so it is terminated and its record fails with `CreateFailed`, and a retry with its key creates it
 * again. A worker the host had decided to end (its `ending`) is left to the lifecycle, which terminates it again. A
 * live record whose worker is gone is marked Unknown, then Failed: `Lost` once it had been created,
 * `CreateFailed` if the host stopped before the provider made it (so a retry with its key creates it). A worker with
 * no record is handled by the instance's orphans policy.
 */
export async function reconcileWithProvider(deps: ReconcileDeps, instance: string, orphans: 'adopt' | 'terminate' | 'ignore', workers: readonly Worker[]): Promise<void> {
  const live = new Map(workers.map((w) => [w.workerId, w]));
  const counts = { adopted: 0, orphans: 0, lost: 0, unfinished: 0, terminated: 0 };
  const terminate = (workerId: string, why: string): Promise<void> =>
    deps.terminate(workerId).then(
      () => void counts.terminated++,
      (error: unknown) => deps.logger.error({ instance, workerId, err: error instanceof Error ? error.message : String(error) }, `could not terminate ${why}`),
    );
  for (const worker of workers) {
    const record = await deps.ledger.store.get(worker.workerId);
    const running = worker.state.phase !== 'Terminated' && worker.state.phase !== 'Failed';
    if (record === undefined) {
      if (orphans === 'adopt') {
        await adoptOrphan(deps.ledger, instance, worker);
        counts.orphans++;
      } else if (orphans === 'terminate' && running) {
        await terminate(worker.workerId, 'an orphan worker');
      }
    } else if (record.instance !== instance) {
      // Bound to another instance at create: this listing does not move it.
      continue;
    } else if (TERMINAL_PHASES.has(record.state.phase)) {
      if (running) await terminate(worker.workerId, 'a worker whose record had ended');
    } else if (record.ending !== undefined && running) {
      // The host had decided to end it (a deadline) and stopped before it had: the lifecycle carries that out once
      // adoption is done. Its record stays Stopping rather than going back to the provider's Running.
      counts.adopted++;
    } else if (CREATE_PHASES.has(record.state.phase) && NOT_STARTED.has(worker.state.phase)) {
      // A create the host stopped in the middle of (a container made but never started): the call that would have
      // finished it died with the host, and its caller never had an answer. It is undone rather than adopted, as
      // nothing may ever finish it; CreateFailed lets the caller's retry with its key create the worker again.
      // Recorded first, so that the events the terminate causes cannot end the record as Terminated.
      await deps.ledger.serial(worker.workerId, () =>
        deps.ledger.observe(instance, worker.workerId, { phase: 'Failed', reason: CREATE_FAILED, message: 'the host stopped in the middle of creating it; what the provider had made was removed' }, 'adopt'),
      );
      await terminate(worker.workerId, 'a worker whose create the host stopped in the middle of');
      counts.unfinished++;
    } else {
      await deps.ledger.serial(worker.workerId, () => deps.ledger.observe(instance, worker.workerId, ledgerStateOfWorker(worker), 'adopt'));
      counts.adopted++;
    }
  }
  for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
    const page = await deps.ledger.store.list({ instance, phases: LIVE_PHASES, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    cursor = page.nextCursor;
    for (const record of page.items) {
      if (live.has(record.id)) continue;
      const neverMade = record.state.phase === 'Pending' || record.state.phase === 'Creating';
      await deps.ledger.serial(record.id, async () => {
        // Pending never reached a provider, so there is no contact to lose: it fails directly.
        if (record.state.phase !== 'Pending') await deps.ledger.observe(instance, record.id, { phase: 'Unknown', message: 'not listed by its provider at start' }, 'adopt');
        await deps.ledger.observe(instance, record.id, neverMade ? { phase: 'Failed', reason: CREATE_FAILED, message: 'the host stopped before the provider reported the worker' } : { phase: 'Failed', reason: 'Lost', message: 'the provider no longer has this worker' }, 'adopt');
      });
      counts.lost++;
    }
  }
  if (counts.adopted + counts.orphans + counts.lost + counts.unfinished + counts.terminated > 0) deps.logger.info({ instance, ...counts }, 'reconciled the worker ledger with the provider');
}

/**
 * Records a worker its provider runs but the ledger has no record of (made behind the host's back, or by a host whose
 * state dir was lost) as an `orphan`: its tenant and owner from its labels, its spec unknown.
 */
export async function adoptOrphan(ledger: WorkerLedger, instance: string, worker: Worker): Promise<void> {
  await ledger.store.create({
    id: worker.workerId, tenant: worker.labels[TENANT_LABEL] ?? DEFAULT_TENANT, owner: worker.labels[OWNER_LABEL] ?? ANONYMOUS, instance,
    labels: worker.labels, spec: {}, state: ledgerStateOfWorker(worker), createdAt: worker.createdAt, origin: 'orphan',
    ...(worker.providerRef === undefined ? {} : { providerRef: worker.providerRef }),
  });
}
