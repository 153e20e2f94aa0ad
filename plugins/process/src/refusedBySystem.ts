import { argumentListTooLong, WorkerManagerError, type ExecString } from '@worker-manager/plugin-sdk';

// What the system refuses because of what the caller asked for. The contract bounds every field, but a bound in
// characters is not one in bytes, and the limit on all arguments and the environment together (ARG_MAX) or on one path
// component (NAME_MAX) depends on the machine, so the system can still refuse a spec within the contract.
const REFUSALS: Readonly<Record<string, string>> = {
  E2BIG: 'the command line and environment are larger than the system can pass to a new process',
  ENAMETOOLONG: 'the path is longer than the file system allows (a name of more than 255 bytes, or the whole path)',
};

/**
 * The error as the caller's `WM_ERR_VALIDATION` when the system refused the request for its size (E2BIG,
 * ENAMETOOLONG); any other error as it is. Left alone, these reached the caller as internal errors. `instancePath`
 * names the field; for E2BIG, `strings` (what the process was to be started with, each with its field) name it
 * better: the one string over the per-string limit, or the list holding the most bytes. The message never quotes a
 * value (the system's own message quotes the path: it stays in `cause`, which does not leave the thread).
 */
export function refusedBySystem(error: unknown, instancePath: string, strings: readonly ExecString[] = []): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code === undefined ? undefined : REFUSALS[code];
  if (reason === undefined) return error;
  if (code === 'E2BIG') {
    const named = argumentListTooLong(strings, 0);
    if (named !== undefined) return new WorkerManagerError(named.code, named.message, { details: named.details ?? {}, cause: error });
  }
  return new WorkerManagerError('WM_ERR_VALIDATION', `${instancePath}: ${reason} (${code})`, { details: { instancePath, errorCode: code }, cause: error });
}
