import { setTimeout as sleep } from 'node:timers/promises';
import { boundText, isWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';

/** What dockerode puts on a failed engine call. */
interface EngineError {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
  message?: string;
}

/**
 * The engine's answer when no default address pool is left for a new network (libnetwork's NotFoundError, so a 404):
 * each Strict worker has a network of its own, and a default engine has 31 pools.
 */
const POOLS_EXHAUSTED = /could not find an available, non-overlapping IPv[46] address pool among the defaults/i;

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/** The engine's own message (`{"message": ...}` body), without dockerode's "(HTTP code 404) ..." wrapping. */
export function engineMessage(error: unknown): string {
  const e = error as EngineError;
  const json = e?.json;
  if (json !== null && typeof json === 'object' && typeof json.message === 'string') return json.message;
  return typeof e?.message === 'string' ? e.message : String(error);
}

/** HTTP status of an engine error, if it has one. */
export function statusOf(error: unknown): number | undefined {
  const s = (error as EngineError | undefined)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** True when the engine could not be reached at all (socket missing, refused, reset). */
export function isUnreachable(error: unknown): boolean {
  const code = (error as EngineError | undefined)?.code;
  return typeof code === 'string' && UNREACHABLE.has(code);
}

/**
 * Maps an engine failure onto the SDK error family: 404 -> WM_ERR_NOT_FOUND, 409 -> WM_ERR_CONFLICT,
 * 400 -> WM_ERR_VALIDATION, unreachable daemon -> WM_ERR_NETWORK (transient), no address pool left for a network
 * -> WM_ERR_RESOURCE_EXHAUSTED (transient: pools come back as workers go), other 5xx -> WM_ERR_PROVIDER_SPECIFIC.
 * `what` names the operation. Engine messages name containers and images, never secret values, but they quote what
 * the request held (an entrypoint of 32,000 characters, a working directory): at most {@link boundText}'s bytes of
 * them go into the message, which every failed call writes to the host log.
 */
export function mapDockerError(error: unknown, what: string, details: Record<string, unknown> = {}): WorkerManagerError {
  if (isWorkerManagerError(error)) return error;
  const status = statusOf(error);
  const raw = engineMessage(error);
  const message = boundText(raw);
  const d = { ...details, operation: what, ...(status === undefined ? {} : { status }) };
  if (isUnreachable(error)) {
    return new WorkerManagerError('WM_ERR_NETWORK', `${what}: the Docker engine is unreachable (${(error as EngineError).code})`, { details: d, cause: error });
  }
  if (POOLS_EXHAUSTED.test(raw)) {
    return new WorkerManagerError(
      'WM_ERR_RESOURCE_EXHAUSTED',
      `${what}: the Docker engine has no address pool left for another network (each Strict worker has its own; raise default-address-pools in the engine's daemon.json): ${message}`,
      { details: { ...d, reason: 'AddressPoolsExhausted' }, cause: error },
    );
  }
  switch (status) {
    case 400:
      return new WorkerManagerError('WM_ERR_VALIDATION', `${what}: the engine refused the request: ${message}`, { details: d, cause: error });
    case 404:
      return new WorkerManagerError('WM_ERR_NOT_FOUND', `${what}: ${message}`, { details: d, cause: error });
    case 409:
      return new WorkerManagerError('WM_ERR_CONFLICT', `${what}: ${message}`, { details: d, cause: error });
    case 500:
    case 502:
    case 503:
      return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `${what}: engine error: ${message}`, { details: d, cause: error, transient: status !== 500 });
    default:
      return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `${what}: ${message}`, { details: d, cause: error });
  }
}

/** Retry policy for engine calls that are safe to repeat. */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
}

/**
 * Runs an idempotent engine call, retrying with exponential backoff and jitter only while the engine is
 * unreachable; every other failure is mapped at once.
 */
export async function withRetry<T>(policy: RetryPolicy, what: string, fn: () => Promise<T>, details: Record<string, unknown> = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isUnreachable(error) || attempt >= policy.attempts) throw mapDockerError(error, what, { ...details, ...(attempt > 1 ? { attempts: attempt } : {}) });
      const base = policy.backoffMs * 2 ** (attempt - 1);
      await sleep(base / 2 + Math.random() * base);
    }
  }
}
