import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** What went wrong with one attempt, and whether another attempt may succeed. */
export type Failure =
  | { kind: 'throttled' }
  | { kind: 'server'; status: number | undefined }
  | { kind: 'timeout' }
  | { kind: 'network'; code: string }
  | { kind: 'aws'; status: number | undefined }
  | { kind: 'credentials' }
  | { kind: 'other' };

/** The shape of AWS SDK errors the plugin reads; never the request or the response body. */
export interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled', 'RequestThrottledException', 'SlowDown']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_SOCKET_CONNECTION_TIMEOUT']);

/** Classifies an SDK failure. `timedOut` is true when the plugin's own per-attempt deadline aborted it. */
export function classify(error: unknown, timedOut: boolean): Failure {
  if (timedOut) return { kind: 'timeout' };
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  if (e.name !== undefined && THROTTLING.has(e.name)) return { kind: 'throttled' };
  if (e.name === 'CredentialsProviderError') return { kind: 'credentials' };
  // Checked before the name: the SDK's HTTP handler names a reset connection 'TimeoutError' too.
  if (status === undefined && e.code !== undefined && NETWORK_CODES.has(e.code)) return { kind: 'network', code: e.code };
  if (e.name === 'TimeoutError') return { kind: 'timeout' };
  if (status === undefined && e.$fault === undefined && /socket hang up|ECONNRESET|ECONNREFUSED/.test(e.message ?? '')) return { kind: 'network', code: 'ECONNRESET' };
  if (e.name === 'InternalServiceError' || (status !== undefined && status >= 500)) return { kind: 'server', status };
  if (status !== undefined || e.$fault !== undefined) return { kind: 'aws', status };
  return { kind: 'other' };
}

/** Whether another attempt may succeed. */
export function isRetryable(f: Failure): boolean {
  return f.kind === 'throttled' || f.kind === 'server' || f.kind === 'timeout' || f.kind === 'network';
}

const AUTHENTICATION = new Set([
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'IncompleteSignatureException',
  'MissingAuthenticationTokenException',
  'InvalidClientTokenId',
  'ExpiredTokenException',
  'ExpiredToken',
]);

/** Facts about a failed AWS call that are safe to show: never a value. */
export interface CallFacts {
  operation: string;
  name?: string;
  version?: string;
  attempts: number;
  /** Strings that must not appear in a message (the value the call carried). */
  redact?: readonly string[];
}

/** AWS messages name resources, never values, but a message is still scrubbed of the value the call carried. */
function awsMessage(e: SdkError, redact: readonly string[] | undefined): string | undefined {
  let text = (e.message ?? '').split('\n')[0]?.slice(0, 400);
  if (text === undefined || text === '') return undefined;
  for (const r of redact ?? []) if (r.length >= 4) text = text.split(r).join('[redacted]');
  return text;
}

/**
 * The WorkerManagerError for a failed AWS call. Codes follow the contract's error semantics; `details` carries the
 * AWS error name, HTTP status, request id and the number of attempts, for the operator. The SDK error is not kept as
 * `cause`: it holds the raw response.
 */
export function toWorkerError(error: unknown, failure: Failure, facts: CallFacts): WorkerManagerError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkError;
  const subject = `${facts.operation}${facts.name === undefined ? '' : ` on secret '${facts.name}'`}`;
  const details: Record<string, unknown> = {
    operation: facts.operation,
    ...(facts.name === undefined ? {} : { name: facts.name }),
    ...(facts.version === undefined ? {} : { version: facts.version }),
    attempts: facts.attempts,
    ...(e.name === undefined ? {} : { awsError: e.name }),
    ...(e.$metadata?.httpStatusCode === undefined ? {} : { httpStatus: e.$metadata.httpStatusCode }),
    ...(e.$metadata?.requestId === undefined ? {} : { requestId: e.$metadata.requestId }),
  };
  const message = awsMessage(e, facts.redact);
  const withMessage = message === undefined ? details : { ...details, awsMessage: message };
  const make = (code: string, text: string, extra: Record<string, unknown> = {}, transient?: boolean): WorkerManagerError =>
    new WorkerManagerError(code, text, { details: { ...withMessage, ...extra }, ...(transient === undefined ? {} : { transient }) });
  switch (failure.kind) {
    case 'throttled':
      return make('WM_ERR_RESOURCE_EXHAUSTED', `AWS Secrets Manager throttled ${subject} (${facts.attempts} attempts)`, { reason: 'throttled' }, true);
    case 'server':
      return make('WM_ERR_NETWORK', `AWS Secrets Manager failed ${subject} with a server error (${facts.attempts} attempts)`, { reason: 'server-error' });
    case 'timeout':
      return make('WM_ERR_TIMEOUT', `AWS Secrets Manager did not answer ${subject} in time (${facts.attempts} attempts)`, { reason: 'timeout' });
    case 'network':
      return make('WM_ERR_NETWORK', `AWS Secrets Manager could not be reached for ${subject}: ${failure.code} (${facts.attempts} attempts)`, { reason: 'unreachable', errno: failure.code });
    case 'credentials':
      return make('WM_ERR_AUTHENTICATION', `no AWS credentials for ${subject}: grant the plugin AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a web identity in its env`, {
        reason: 'no-credentials',
      });
    case 'other':
      if (/region is missing/i.test(e.message ?? '')) {
        return make('WM_ERR_CONFIGURATION', `no AWS region for ${subject}: set config.region or grant AWS_REGION`, { reason: 'no-region' });
      }
      return make('WM_ERR_INTERNAL', `unexpected failure of ${subject}: ${e.name ?? 'error'}`);
    case 'aws':
      break;
  }
  const name = e.name ?? '';
  if (AUTHENTICATION.has(name)) return make('WM_ERR_AUTHENTICATION', `AWS refused the credentials for ${subject} (${name})`);
  if (name === 'AccessDeniedException') return make('WM_ERR_PERMISSION_DENIED', `AWS denied ${subject}: the IAM policy does not allow it`);
  if (name === 'DecryptionFailure' || name === 'EncryptionFailure') return make('WM_ERR_PERMISSION_DENIED', `AWS KMS refused ${subject} (${name}): check the key policy`, { reason: 'kms' });
  if (name === 'ResourceNotFoundException') return make('WM_ERR_SECRET_NOT_FOUND', `no secret named '${facts.name ?? '?'}'`);
  if (name === 'ResourceExistsException') return make('WM_ERR_CONFLICT', `AWS refused ${subject}: a version with this request token exists with another value`, { reason: 'token-reused' });
  if (name === 'InvalidRequestException') return make('WM_ERR_CONFLICT', `AWS refused ${subject} in the secret's current state (${name})`);
  if (name === 'InvalidParameterException' || name === 'ValidationException') return make('WM_ERR_VALIDATION', `AWS rejected a parameter of ${subject} (${name})`);
  if (name === 'LimitExceededException') return make('WM_ERR_RESOURCE_EXHAUSTED', `AWS refused ${subject}: a Secrets Manager quota is reached`, {}, false);
  return make('WM_ERR_PROVIDER_SPECIFIC', `AWS Secrets Manager failed ${subject} (${name || 'unknown error'})`);
}
