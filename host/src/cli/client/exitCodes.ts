import { isWorkerManagerError, type ErrorCategory } from '@worker-manager/plugin-sdk';

/**
 * Exit codes of `wm`, one table for every command (docs/operations.md shows it). A script can tell "fix your
 * request" (2, 3, 4, 6) from "try again later" (5) from "it broke" (1) without parsing messages.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, auth: 4, unavailable: 5, conflict: 6 } as const;
/** One of the exit codes. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The table as documentation rows: code, meaning, what leads to it. */
export const EXIT_CODE_TABLE: ReadonlyArray<{ code: ExitCode; meaning: string; from: string }> = [
  { code: EXIT.ok, meaning: 'success', from: '2xx answer; the worker reached Running, or ended with exit code 0 (`workers create`)' },
  { code: EXIT.failure, meaning: 'failure', from: 'categories Internal and PermanentInfrastructure; the worker failed without an exit code of its own while `workers create` waited' },
  { code: EXIT.usage, meaning: 'usage or configuration', from: 'bad flags or arguments, invalid cli.yaml, token file or spec file; categories ClientValidation and Configuration (HTTP 400, 413, 415)' },
  { code: EXIT.notFound, meaning: 'not found', from: 'WM_ERR_NOT_FOUND, WM_ERR_SECRET_NOT_FOUND, WM_ERR_SECRET_VERSION_NOT_FOUND, HOST_ERR_INSTANCE_NOT_FOUND (HTTP 404)' },
  { code: EXIT.auth, meaning: 'not authenticated or not allowed', from: 'category Authorization (HTTP 401, 403)' },
  { code: EXIT.unavailable, meaning: 'unavailable, retry later', from: 'host unreachable, categories TransientInfrastructure and ResourceLimits (HTTP 429, most 503), wait timeout' },
  { code: EXIT.conflict, meaning: 'conflict', from: 'WM_ERR_ALREADY_EXISTS, WM_ERR_CONFLICT (HTTP 409)' },
];

const BY_CODE: Readonly<Record<string, ExitCode>> = {
  WM_ERR_NOT_FOUND: EXIT.notFound,
  WM_ERR_SECRET_NOT_FOUND: EXIT.notFound,
  WM_ERR_SECRET_VERSION_NOT_FOUND: EXIT.notFound,
  HOST_ERR_INSTANCE_NOT_FOUND: EXIT.notFound,
  WM_ERR_ALREADY_EXISTS: EXIT.conflict,
  WM_ERR_CONFLICT: EXIT.conflict,
  // ResourceLimits, but the request itself is too big: waiting does not help.
  WM_ERR_SECRET_SIZE_LIMIT: EXIT.usage,
};

const BY_CATEGORY: Readonly<Record<ErrorCategory, ExitCode>> = {
  ClientValidation: EXIT.usage,
  Configuration: EXIT.usage,
  Authorization: EXIT.auth,
  TransientInfrastructure: EXIT.unavailable,
  ResourceLimits: EXIT.unavailable,
  PermanentInfrastructure: EXIT.failure,
  Internal: EXIT.failure,
};

/** The exit code for whatever a command threw: the code's own when it has one, else its category's, else 1. */
export function exitCodeFor(error: unknown): ExitCode {
  if (!isWorkerManagerError(error)) return EXIT.failure;
  return BY_CODE[error.code] ?? BY_CATEGORY[error.category];
}
