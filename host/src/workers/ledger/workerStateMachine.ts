import type { WorkerPhase, WorkerState } from '@worker-manager/plugin-sdk';
import type { LedgerPhase, LedgerState } from './workerRecord.ts';

/** Every ledger phase, in lifecycle order (the order docs and tests list them in). */
export const LEDGER_PHASES: readonly LedgerPhase[] = [
  'Pending', 'Creating', 'Starting', 'Running', 'Degraded', 'Recovering', 'Paused', 'Stopping', 'Terminated', 'Failed', 'Unknown',
];

/** Phases a worker never leaves: its record is frozen apart from labels and bookkeeping, and may be purged. */
export const TERMINAL_PHASES: ReadonlySet<LedgerPhase> = new Set<LedgerPhase>(['Terminated', 'Failed']);

/**
 * The legal moves between different phases, as data so that docs can render it and tests can walk it. A move to the
 * same phase is never listed: it is an update of reason/message/pendingReason (legal from any non-terminal phase).
 *
 * - Every live phase may go to Failed (a provider can fail at any point) and, once the worker exists on a provider,
 *   to Unknown (contact lost).
 * - Pending has nothing on a provider yet: cancelling it goes straight to Terminated, there is nothing to stop or to
 *   lose contact with.
 * - Creating/Starting/Running/Paused may reach Terminated directly: short jobs exit on their own, and a worker
 *   removed behind the host's back is seen as gone, not as stopping.
 * - Degraded and Recovering end through Stopping or Failed: a worker being healed is either stopped by the host or
 *   declared failed by the restart policy, never silently "terminated".
 * - Stopping only ends (Terminated, Failed) or loses contact.
 * - Unknown means "we do not know": when contact is regained the worker may be found in any phase it can really be
 *   in (everything but Pending, which is host-side only), or declared Failed with reason Lost.
 * - Terminated and Failed have no exits; a worker that must run again is a new record.
 */
export const LEGAL_TRANSITIONS: Readonly<Record<LedgerPhase, readonly LedgerPhase[]>> = {
  Pending: ['Creating', 'Terminated', 'Failed'],
  Creating: ['Starting', 'Running', 'Stopping', 'Terminated', 'Failed', 'Unknown'],
  Starting: ['Running', 'Stopping', 'Terminated', 'Failed', 'Unknown'],
  Running: ['Degraded', 'Recovering', 'Paused', 'Stopping', 'Terminated', 'Failed', 'Unknown'],
  Degraded: ['Running', 'Recovering', 'Stopping', 'Failed', 'Unknown'],
  Recovering: ['Starting', 'Running', 'Degraded', 'Stopping', 'Failed', 'Unknown'],
  Paused: ['Running', 'Stopping', 'Terminated', 'Failed', 'Unknown'],
  Stopping: ['Terminated', 'Failed', 'Unknown'],
  Terminated: [],
  Failed: [],
  Unknown: ['Creating', 'Starting', 'Running', 'Degraded', 'Recovering', 'Paused', 'Stopping', 'Terminated', 'Failed'],
};

/** Why a transition was not applied; plain data so the caller can log and count it without catching. */
export interface TransitionRejection {
  ok: false;
  code: 'HOST_ERR_WORKER_TRANSITION_ILLEGAL';
  from: LedgerPhase;
  to: LedgerPhase;
}

/** A transition the table allows: the state to store, and whether anything differs from the current one. */
export interface TransitionAccepted {
  ok: true;
  state: LedgerState;
  /** False for an exact repeat (a redelivered event), which the store does not write. */
  changed: boolean;
}

const sameState = (a: LedgerState, b: LedgerState): boolean =>
  a.phase === b.phase && a.reason === b.reason && a.message === b.message && a.exitCode === b.exitCode && a.pendingReason === b.pendingReason;

/**
 * Checks `next` against the table. An exact repeat of the current state is accepted unchanged, even in a terminal
 * phase, because events are delivered at least once; so is the same end told with fewer details. A same-phase change
 * of details is an update, except in a terminal phase, whose outcome (reason, exit code) must not be rewritten.
 */
export function checkTransition(current: LedgerState, next: LedgerState): TransitionAccepted | TransitionRejection {
  const state = withoutUndefined(next);
  if (sameState(current, state) || lesserAccountOfEnd(current, state)) return { ok: true, state: current, changed: false };
  const legal = current.phase === next.phase ? !TERMINAL_PHASES.has(current.phase) : LEGAL_TRANSITIONS[current.phase].includes(next.phase);
  if (!legal) return { ok: false, code: 'HOST_ERR_WORKER_TRANSITION_ILLEGAL', from: current.phase, to: next.phase };
  return { ok: true, state, changed: true };
}

/**
 * The same end told with fewer details: a provider reports a failure as a state change (reason and exit code) and as
 * a `WorkerFailed` event, which carries no exit code. Whichever comes second repeats the first; it is not a rewrite.
 */
function lesserAccountOfEnd(current: LedgerState, next: LedgerState): boolean {
  if (!TERMINAL_PHASES.has(current.phase) || next.phase !== current.phase || next.reason !== current.reason) return false;
  return (next.exitCode === undefined || next.exitCode === current.exitCode) && (next.message === undefined || next.message === current.message) && (next.pendingReason === undefined || next.pendingReason === current.pendingReason);
}

/** Stored JSON never holds `undefined` members, so neither does a state about to be stored or compared. */
function withoutUndefined(state: LedgerState): LedgerState {
  const out: LedgerState = { phase: state.phase };
  if (state.reason !== undefined) out.reason = state.reason;
  if (state.message !== undefined) out.message = state.message;
  if (state.exitCode !== undefined) out.exitCode = state.exitCode;
  if (state.pendingReason !== undefined) out.pendingReason = state.pendingReason;
  return out;
}

/** The ledger phase each SDK phase stands for; providers report SDK states, the ledger keeps its own vocabulary. */
export const LEDGER_PHASE_OF_SDK: Readonly<Record<WorkerPhase, LedgerPhase>> = {
  Creating: 'Creating',
  Starting: 'Starting',
  Running: 'Running',
  Paused: 'Paused',
  Terminating: 'Stopping',
  Terminated: 'Terminated',
  Failed: 'Failed',
  Unknown: 'Unknown',
};

/** The ledger state for a state a provider reported, keeping the reason and exit code the SDK state carries. */
export function ledgerStateOf(state: WorkerState): LedgerState {
  const out: LedgerState = { phase: LEDGER_PHASE_OF_SDK[state.phase] };
  if (state.phase === 'Failed') out.reason = state.reason;
  if (state.phase === 'Starting' && state.pendingReason !== undefined) out.pendingReason = state.pendingReason;
  if ((state.phase === 'Failed' || state.phase === 'Terminated') && state.exitCode !== undefined) out.exitCode = state.exitCode;
  return out;
}
