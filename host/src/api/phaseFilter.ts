import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { LEDGER_PHASES, type LedgerPhase } from '../workers/ledger/index.ts';

/**
 * The provider contract's phase names that stand for several ledger phases: a client that knows only the contract
 * (`Creating`, `Running`, `Terminating`) keeps getting what it asked for from a listing served by the ledger.
 */
const CONTRACT_ALIASES: Readonly<Record<string, readonly LedgerPhase[]>> = {
  Creating: ['Pending', 'Creating', 'Starting'],
  Running: ['Running', 'Degraded', 'Recovering'],
  Terminating: ['Stopping'],
};

/**
 * Parses `state=Running,Failed`: each name a ledger phase or a contract alias, exactly as spelled. An unknown name is
 * a 400 naming it and the allowed ones, never an empty listing (a wrong-case `running` would otherwise match nothing).
 */
export function parsePhaseFilter(text: string): LedgerPhase[] {
  const out = new Set<LedgerPhase>();
  for (const raw of text.split(',')) {
    const name = raw.trim();
    const phases = CONTRACT_ALIASES[name] ?? (LEDGER_PHASES.includes(name as LedgerPhase) ? [name as LedgerPhase] : undefined);
    if (phases === undefined) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `state '${name}' is not a worker phase; use one of ${[...LEDGER_PHASES, 'Terminating'].join(', ')}`, {
        details: { path: '/querystring/state', value: name },
      });
    }
    for (const phase of phases) out.add(phase);
  }
  return [...out];
}
