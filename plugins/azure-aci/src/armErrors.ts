import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** The fields of an Azure SDK failure the plugin reads: a RestError (ARM) or an @azure/identity error. Never its request. */
interface AzureFailure {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
  errorResponse?: { error?: string; errorDescription?: string };
}

/** ARM error codes that mean "no capacity" rather than "bad request". */
const QUOTA_CODES = new Set(['ContainerGroupQuotaReached', 'ServiceUnavailable', 'ResourceRequestsNotAvailable', 'QuotaExceeded', 'StandardCoresQuotaExceeded']);
const NETWORK_CODES = new Set(['REQUEST_SEND_ERROR', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** What a failed call was doing, for the message and details; never a secret. */
export interface CallFacts {
  operation: string;
  workerId?: string;
  /** Strings that must not appear in a message (the client secret, secret env values). */
  redact?: readonly string[];
}

export const statusOf = (error: unknown): number | undefined => (typeof error === 'object' && error !== null ? (error as AzureFailure).statusCode : undefined);
export const isNotFound = (error: unknown): boolean => statusOf(error) === 404;
export const isConflict = (error: unknown): boolean => statusOf(error) === 409;

function scrub(text: string | undefined, redact: readonly string[] | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  let out = (text.split('\n')[0] ?? '').slice(0, 400);
  for (const r of redact ?? []) if (r.length >= 4) out = out.split(r).join('[redacted]');
  return out;
}

/**
 * The WorkerManagerError for a failed Azure call, after the SDK's own retries. `details` carries the ARM error code,
 * the HTTP status and ARM's message (scrubbed of the values the call carried). The SDK error is never kept as `cause`:
 * it holds the request, and with it the bearer token.
 */
export function toWorkerError(error: unknown, facts: CallFacts): WorkerManagerError {
  if (error instanceof WorkerManagerError) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as AzureFailure;
  const subject = `${facts.operation}${facts.workerId === undefined ? '' : ` of worker '${facts.workerId}'`}`;
  const armMessage = scrub(e.message, facts.redact);
  const details: Record<string, unknown> = {
    operation: facts.operation,
    ...(facts.workerId === undefined ? {} : { workerId: facts.workerId }),
    ...(e.statusCode === undefined ? {} : { httpStatus: e.statusCode }),
    ...(e.code === undefined ? {} : { armCode: e.code }),
    ...(armMessage === undefined ? {} : { armMessage }),
  };
  const make = (code: string, text: string, transient?: boolean): WorkerManagerError =>
    new WorkerManagerError(code, text, { details, ...(transient === undefined ? {} : { transient }) });
  if (e.name === 'AbortError') return make('WM_ERR_TIMEOUT', `${subject} was aborted at its deadline`);
  if (e.name === 'AuthenticationError' || e.name === 'CredentialUnavailableError' || e.name === 'AuthenticationRequiredError') {
    const aad = scrub(e.errorResponse?.error, facts.redact);
    return new WorkerManagerError('WM_ERR_AUTHENTICATION', `Microsoft Entra refused the service principal's credentials for ${subject}${aad === undefined ? '' : ` (${aad})`}`, {
      details: { operation: facts.operation, ...(e.statusCode === undefined ? {} : { httpStatus: e.statusCode }), ...(aad === undefined ? {} : { aadError: aad }) },
    });
  }
  const status = e.statusCode;
  if (status === undefined) {
    if (e.code !== undefined && NETWORK_CODES.has(e.code)) return make('WM_ERR_NETWORK', `Azure Resource Manager could not be reached for ${subject}`);
    return make('WM_ERR_INTERNAL', `unexpected failure of ${subject}: ${e.name ?? 'error'}`);
  }
  if (status === 429) return make('WM_ERR_RESOURCE_EXHAUSTED', `Azure Resource Manager throttled ${subject} and kept throttling through every retry`, true);
  if (status === 401) return make('WM_ERR_AUTHENTICATION', `Azure Resource Manager refused the token for ${subject} (${e.code ?? 'unauthorized'})`);
  if (status === 403) return make('WM_ERR_AUTHORIZATION', `Azure Resource Manager denied ${subject} (${e.code ?? 'forbidden'}): grant the service principal a role on the resource group`);
  if (status === 404) return make('WM_ERR_NOT_FOUND', `${subject}: not found (${e.code ?? 'NotFound'})`);
  if (status === 409) return make('WM_ERR_CONFLICT', `Azure Resource Manager refused ${subject} in the resource's current state (${e.code ?? 'Conflict'})`);
  if (e.code !== undefined && QUOTA_CODES.has(e.code)) return make('WM_ERR_RESOURCE_EXHAUSTED', `Azure has no capacity for ${subject} (${e.code})`, true);
  if (status >= 500) return make('WM_ERR_NETWORK', `Azure Resource Manager failed ${subject} with a server error (${e.code ?? status})`);
  if (status === 400) return make('WM_ERR_VALIDATION', `Azure Resource Manager rejected ${subject} (${e.code ?? 'BadRequest'})`);
  return make('WM_ERR_PROVIDER_SPECIFIC', `Azure Resource Manager failed ${subject} (${e.code ?? status})`);
}
