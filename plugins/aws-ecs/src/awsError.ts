import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** What went wrong with one attempt, and whether another attempt may succeed. */
export type Failure =
  | { kind: 'throttled' }
  | { kind: 'server'; status: number | undefined }
  | { kind: 'timeout' }
  | { kind: 'network'; code: string }
  | { kind: 'aws'; status: number | undefined }
  | { kind: 'credentials' }
  /** The host's egress proxy refused the target: it is not in the instance's `egress` list. */
  | { kind: 'egress' }
  | { kind: 'other' };

/** The fields of AWS SDK errors the plugin reads; never the request or the response body. */
interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled', 'RequestThrottledException']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const AUTHENTICATION = new Set(['UnrecognizedClientException', 'InvalidSignatureException', 'IncompleteSignatureException', 'MissingAuthenticationTokenException', 'ExpiredTokenException']);

const asSdkError = (error: unknown): SdkError => (typeof error === 'object' && error !== null ? error : {}) as SdkError;

/** The AWS error name (`ClusterNotFoundException` ...), when the error came from AWS. */
export const awsErrorName = (error: unknown): string | undefined => asSdkError(error).name;

/** Classifies an SDK failure. `timedOut` is true when the plugin's own per-attempt deadline aborted it. */
export function classify(error: unknown, timedOut: boolean): Failure {
  if (timedOut) return { kind: 'timeout' };
  const e = asSdkError(error);
  const status = e.$metadata?.httpStatusCode;
  if (e.name !== undefined && THROTTLING.has(e.name)) return { kind: 'throttled' };
  if (e.name === 'CredentialsProviderError') return { kind: 'credentials' };
  if (status === undefined && /egress proxy refused/.test(e.message ?? '')) return { kind: 'egress' };
  // Before the name: the SDK's HTTP handler names a reset connection 'TimeoutError' too.
  if (status === undefined && e.code !== undefined && NETWORK_CODES.has(e.code)) return { kind: 'network', code: e.code };
  if (e.name === 'TimeoutError') return { kind: 'timeout' };
  if (status === undefined && e.$fault === undefined && /socket hang up|ECONNRESET|ECONNREFUSED/.test(e.message ?? '')) return { kind: 'network', code: 'ECONNRESET' };
  if (e.name === 'ServerException' || e.name === 'ServiceUnavailableException' || (status !== undefined && status >= 500)) return { kind: 'server', status };
  if (status !== undefined || e.$fault !== undefined) return { kind: 'aws', status };
  return { kind: 'other' };
}

/** Whether another attempt may succeed. */
export function isRetryable(f: Failure): boolean {
  return f.kind === 'throttled' || f.kind === 'server' || f.kind === 'timeout' || f.kind === 'network';
}

/** Facts about a failed AWS call that are safe to show. */
export interface CallFacts {
  /** `ecs:RunTask`, `logs:GetLogEvents`. */
  operation: string;
  workerId?: string;
  attempts: number;
}

/**
 * The WorkerManagerError for a failed AWS call. `details` carries the AWS error name, HTTP status, request id and the
 * attempts; the SDK error is not kept as `cause` (it holds the raw response). AWS messages name resources, never the
 * environment of a task, and are cut to their first line.
 */
export function toWorkerError(error: unknown, failure: Failure, facts: CallFacts): WorkerManagerError {
  const e = asSdkError(error);
  const subject = `${facts.operation}${facts.workerId === undefined ? '' : ` for worker '${facts.workerId}'`}`;
  const awsMessage = (e.message ?? '').split('\n')[0]?.slice(0, 400);
  const details: Record<string, unknown> = {
    operation: facts.operation,
    ...(facts.workerId === undefined ? {} : { workerId: facts.workerId }),
    attempts: facts.attempts,
    ...(e.name === undefined ? {} : { awsError: e.name }),
    ...(e.$metadata?.httpStatusCode === undefined ? {} : { httpStatus: e.$metadata.httpStatusCode }),
    ...(e.$metadata?.requestId === undefined ? {} : { requestId: e.$metadata.requestId }),
    ...(awsMessage === undefined || awsMessage === '' ? {} : { awsMessage }),
  };
  const make = (code: string, text: string, extra: Record<string, unknown> = {}, transient?: boolean): WorkerManagerError =>
    new WorkerManagerError(code, text, { details: { ...details, ...extra }, ...(transient === undefined ? {} : { transient }) });
  switch (failure.kind) {
    case 'throttled':
      return make('WM_ERR_RESOURCE_EXHAUSTED', `AWS throttled ${subject} (${facts.attempts} attempts): the API rate limit is reached`, { reason: 'throttled' }, true);
    case 'server':
      return make('WM_ERR_NETWORK', `AWS failed ${subject} with a server error (${facts.attempts} attempts)`, { reason: 'server-error' });
    case 'timeout':
      return make('WM_ERR_TIMEOUT', `AWS did not answer ${subject} in time (${facts.attempts} attempts)`, { reason: 'timeout' });
    case 'network':
      return make('WM_ERR_NETWORK', `AWS could not be reached for ${subject}: ${failure.code} (${facts.attempts} attempts)`, { reason: 'unreachable', errno: failure.code });
    case 'credentials':
      return make('WM_ERR_AUTHENTICATION', `no AWS credentials for ${subject}: grant the plugin AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity in its env`);
    case 'egress':
      // Not transient: retrying cannot help until the operator lists the endpoint.
      return make('WM_ERR_NETWORK', `the egress proxy refused ${subject}: add the AWS endpoint to the instance's egress list`, { reason: 'egress-refused' }, false);
    case 'other':
      if (/region is missing/i.test(e.message ?? '')) return make('WM_ERR_CONFIGURATION', `no AWS region for ${subject}: set config.region or grant AWS_REGION`, { reason: 'no-region' });
      return make('WM_ERR_INTERNAL', `unexpected failure of ${subject}: ${e.name ?? 'error'}`);
    case 'aws':
      break;
  }
  const name = e.name ?? '';
  if (AUTHENTICATION.has(name)) return make('WM_ERR_AUTHENTICATION', `AWS refused the credentials for ${subject} (${name})`);
  if (name === 'AccessDeniedException') return make('WM_ERR_AUTHORIZATION', `AWS denied ${subject}: the IAM policy does not allow it`);
  if (name === 'ClusterNotFoundException') return make('WM_ERR_CONFIGURATION', `AWS refused ${subject}: the configured cluster does not exist`);
  if (name === 'PlatformUnknownException' || name === 'PlatformTaskDefinitionIncompatibilityException') return make('WM_ERR_CONFIGURATION', `AWS refused ${subject} (${name})`);
  if (name === 'ConflictException') return make('WM_ERR_ALREADY_EXISTS', `AWS refused ${subject}: a task was started with this worker's client token and other parameters`);
  if (name === 'InvalidParameterException' || name === 'ClientException') return make('WM_ERR_VALIDATION', `AWS rejected a parameter of ${subject} (${name})`);
  if (name === 'LimitExceededException') return make('WM_ERR_RESOURCE_EXHAUSTED', `AWS refused ${subject}: an account quota is reached`, {}, false);
  return make('WM_ERR_PROVIDER_SPECIFIC', `AWS failed ${subject} (${name || 'unknown error'})`);
}
