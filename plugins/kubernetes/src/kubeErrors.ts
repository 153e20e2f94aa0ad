import { ApiException } from '@kubernetes/client-node';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** HTTP status of an apiserver answer, when the error is one. */
export function statusOf(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const code = (error as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (error: unknown): boolean => statusOf(error) === 404;
export const isConflict = (error: unknown): boolean => statusOf(error) === 409;

/** The apiserver's own words (Status.message), for objects whose errors hold nothing secret (pods, never Secrets). */
function apiMessage(error: unknown): string | undefined {
  if (!(error instanceof ApiException)) return undefined;
  const body: unknown = typeof error.body === 'string' ? safeJson(error.body) : error.body;
  const message = (body as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message.slice(0, 500) : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * An apiserver failure as a WorkerManagerError with a stable code. `quiet` drops the apiserver's message: an error
 * about a Secret may quote its content, and secrets never reach errors.
 */
export function mapKubeError(error: unknown, operation: string, details: Record<string, unknown>, quiet = false): WorkerManagerError {
  if (error instanceof WorkerManagerError) return error;
  const status = statusOf(error);
  const said = quiet ? undefined : apiMessage(error);
  const message = `kubernetes ${operation} failed${status === undefined ? '' : ` (HTTP ${status})`}${said === undefined ? '' : `: ${said}`}`;
  const options = { details: { ...details, operation, ...(status === undefined ? {} : { status }) }, ...(quiet ? {} : { cause: error }) };
  switch (status) {
    case 400:
    case 422:
      return new WorkerManagerError('WM_ERR_VALIDATION', message, options);
    case 401:
      return new WorkerManagerError('WM_ERR_AUTHENTICATION', message, options);
    case 403:
      return new WorkerManagerError('WM_ERR_AUTHORIZATION', message, options);
    case 404:
      return new WorkerManagerError('WM_ERR_NOT_FOUND', message, options);
    case 409:
      return new WorkerManagerError('WM_ERR_CONFLICT', message, options);
    case 429:
      return new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', message, options);
    case undefined:
      return new WorkerManagerError('WM_ERR_NETWORK', `kubernetes ${operation} failed: ${error instanceof Error ? error.message : String(error)}`, options);
    default:
      return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', message, options);
  }
}
