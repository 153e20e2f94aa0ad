import { TERMINAL_PHASES, type LedgerPhase, type WorkerEnding, type WorkerRecord } from './ledger/index.ts';

/** Failed reason of a worker that ran past its spec's `timeoutMs`. */
export const DEADLINE_EXCEEDED = 'DeadlineExceeded';
/** Failed reason of a worker that did not reach Running within its start timeout. */
export const START_TIMEOUT = 'StartTimeout';
/** Failed reason of a worker the host terminated as it shut down (`host.onShutdown` drain or terminate). */
export const HOST_SHUTDOWN = 'HostShutdown';

/** Phases of a worker that has not started yet: its start timeout runs. */
const NOT_STARTED: ReadonlySet<LedgerPhase> = new Set<LedgerPhase>(['Pending', 'Creating', 'Starting']);

/**
 * The next thing the host must do about a live worker, and when (epoch ms): end it for not having started in time
 * (`start`), end it at its deadline (`deadline`), or carry out an ending it had already decided (`ending`, due at
 * once: a host that stopped between deciding and finishing resumes it). Undefined when nothing is due, ever.
 */
export interface LifecycleDue {
  kind: 'start' | 'deadline' | 'ending';
  at: number;
  /** The ending to carry out when it is due. */
  ending: Omit<WorkerEnding, 'at'>;
}

/**
 * What is due for a record, computed from the record alone (its phase timestamps, spec and start timeout), so that a
 * host that restarts arms the same deadlines again.
 *
 * - The start timeout counts from the record's creation and runs while the worker has never been Running and is
 *   Pending, Creating or Starting (the restart of a live worker, Recovering -> Starting, is not covered).
 * - The deadline (`spec.timeoutMs`) counts from the first time the worker was Running: time spent waiting for an image
 *   or a node is the start timeout's, and a restart does not give the worker a new deadline. Paused time counts.
 */
export function lifecycleDue(record: WorkerRecord, startTimeoutMs: number | undefined): LifecycleDue | undefined {
  if (TERMINAL_PHASES.has(record.state.phase)) return undefined;
  if (record.ending !== undefined) {
    const { at, ...ending } = record.ending;
    return { kind: 'ending', at: Date.parse(at), ending };
  }
  const running = record.timestamps.Running;
  if (running === undefined) {
    const timeoutMs = record.startTimeoutMs ?? startTimeoutMs;
    if (timeoutMs === undefined || !NOT_STARTED.has(record.state.phase)) return undefined;
    const pendingReason = record.state.pendingReason;
    return {
      kind: 'start',
      at: Date.parse(record.createdAt) + timeoutMs,
      ending: {
        reason: START_TIMEOUT,
        message: `did not start within ${timeoutMs} ms (${record.state.phase}${pendingReason === undefined ? '' : `, last pending reason ${pendingReason}`})`,
        ...(pendingReason === undefined ? {} : { pendingReason }),
      },
    };
  }
  const timeoutMs = record.spec.timeoutMs;
  if (timeoutMs === undefined) return undefined;
  return { kind: 'deadline', at: Date.parse(running) + timeoutMs, ending: { reason: DEADLINE_EXCEEDED, message: `ran past its timeoutMs of ${timeoutMs} ms` } };
}
