import { WorkerManagerError, isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { parseLabelSelector, type LabelSelector } from '../workers/ledger/index.ts';

/**
 * A selector from a query parameter: undefined when empty. A bad one is a 400 WM_ERR_VALIDATION naming the parameter,
 * like every other bad query parameter, with the column the parser stopped at in the message and the ledger's own
 * HOST_ERR_LABEL_SELECTOR_INVALID as its cause.
 */
export function parseLabelSelectorAt(text: string, path: string): LabelSelector | undefined {
  if (text.trim() === '') return undefined;
  try {
    return parseLabelSelector(text);
  } catch (error) {
    if (!isWorkerManagerError(error)) throw error;
    throw new WorkerManagerError('WM_ERR_VALIDATION', `${path.split('/').at(-1)}: ${error.message}`, { details: { path }, cause: error });
  }
}
