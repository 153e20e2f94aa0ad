import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ApiError } from './apiSchemas.ts';
import { httpStatusFor } from './httpStatusFor.ts';

/**
 * The status and body an error is answered with. An Internal error's message and details may carry anything
 * (a stack-less cause, a path, a value), so the caller gets only the code and the correlation id to quote.
 */
export function apiErrorBody(error: WorkerManagerError, correlationId: string): { status: number; body: ApiError } {
  const status = httpStatusFor(error);
  const hidden = error.category === 'Internal';
  const body: ApiError = {
    code: error.code,
    category: error.category,
    message: hidden ? `internal error (correlation id ${correlationId})` : error.message,
    correlationId,
  };
  if (error.details !== undefined && !hidden) body.details = error.details;
  return { status, body };
}
