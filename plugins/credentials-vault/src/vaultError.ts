import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/** What a failed request was, for error messages: never a value, a token or a request body. */
export interface RequestSubject {
  operation: string;
  /** The Vault path (it holds the secret name, never a value). */
  path: string;
  address: string;
}

/** The status and `errors` of a Vault answer that was not 2xx, as node-vault's ApiResponseError carries them. */
export interface VaultResponseFailure {
  status: number;
  errors: string[];
  /** The whole answer (a 404 for a deleted version carries its metadata). */
  body: unknown;
}

/** The HTTP status and Vault `errors` of a node-vault ApiResponseError; undefined for anything else. */
export function responseFailure(error: unknown): VaultResponseFailure | undefined {
  const response = (error as { response?: { statusCode?: unknown; body?: unknown } } | null)?.response;
  if (typeof response?.statusCode !== 'number') return undefined;
  const body = response.body as { errors?: unknown } | null | undefined;
  const errors = Array.isArray(body?.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
  return { status: response.statusCode, errors, body };
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** Vault's own words, shortened: they name a path or a rule, never a value the plugin sent. */
function vaultWords(errors: string[]): string[] {
  return errors.slice(0, 3).map((e) => (e.length > 200 ? `${e.slice(0, 200)}…` : e));
}

/**
 * Turns a failed node-vault call into a coded error. The original error is never kept as `cause`: an axios error
 * holds the request config, whose headers carry the Vault token and whose body carries the value.
 */
export function toVaultError(error: unknown, subject: RequestSubject): WorkerManagerError {
  if (error instanceof WorkerManagerError) return error;
  const where = `Vault ${subject.operation} ${subject.path}`;
  const failure = responseFailure(error);
  if (failure !== undefined) {
    const { status, errors } = failure;
    const details = { ...subject, status, vaultErrors: vaultWords(errors) };
    const text = errors.join('; ');
    if (status === 403 && errors.includes('invalid token')) {
      return new WorkerManagerError('WM_ERR_AUTHENTICATION', `${where}: Vault does not accept the plugin's token (403 invalid token: expired, revoked or unknown)`, {
        details: { ...details, reason: 'invalid-token' },
      });
    }
    if (status === 403) {
      return new WorkerManagerError('WM_ERR_PERMISSION_DENIED', `${where}: 403 permission denied; the token's policies do not grant this path`, {
        details: { ...details, reason: 'permission-denied' },
      });
    }
    if (status === 404 && /no handler for route/.test(text)) {
      return new WorkerManagerError('WM_ERR_CONFIGURATION', `${where}: Vault has no secrets engine mounted there (404 no handler for route); check the instance's mount`, {
        details: { ...details, reason: 'no-mount' },
      });
    }
    if (status === 503 && /sealed/i.test(text)) {
      return new WorkerManagerError('WM_ERR_NETWORK', `${where}: Vault at ${subject.address} is sealed (503); it answers again once it is unsealed`, {
        details: { ...details, reason: 'sealed' },
      });
    }
    if (status === 429) {
      return new WorkerManagerError('WM_ERR_NETWORK', `${where}: Vault is rate limiting the plugin (429)`, { details: { ...details, reason: 'rate-limited' } });
    }
    if (status >= 500) {
      return new WorkerManagerError('WM_ERR_NETWORK', `${where}: Vault answered ${status}${errors.length > 0 ? ` (${vaultWords(errors).join('; ')})` : ''}`, {
        details: { ...details, reason: 'server-error' },
      });
    }
    return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `${where}: Vault answered ${status}${errors.length > 0 ? ` (${vaultWords(errors).join('; ')})` : ''}`, {
      details: { ...details, reason: 'rejected' },
    });
  }
  const code = (error as { code?: unknown } | null)?.code;
  const errno = typeof code === 'string' ? code : undefined;
  if (errno === 'ECONNABORTED' || errno === 'ETIMEDOUT') {
    return new WorkerManagerError('WM_ERR_TIMEOUT', `${where}: no answer from Vault at ${subject.address} within the request timeout`, {
      details: { ...subject, reason: 'timeout', errno },
    });
  }
  if (errno !== undefined && TLS_CODES.test(errno)) {
    return new WorkerManagerError('WM_ERR_CONFIGURATION', `${where}: the TLS connection to ${subject.address} failed (${errno}); check caFile and the address`, {
      details: { ...subject, reason: 'tls', errno },
    });
  }
  if (errno !== undefined || (error as { isAxiosError?: unknown } | null)?.isAxiosError === true) {
    return new WorkerManagerError('WM_ERR_NETWORK', `${where}: Vault at ${subject.address} cannot be reached (${errno ?? 'connection failed'})`, {
      details: { ...subject, reason: 'unreachable', errno: errno ?? null },
    });
  }
  // node-vault's argument validation (tv4) or a bug here; its message may quote the arguments, so it is not kept.
  return new WorkerManagerError('WM_ERR_INTERNAL', `${where}: the request failed inside the Vault client`, {
    details: { ...subject, reason: 'client', errorName: error instanceof Error ? error.name : typeof error },
  });
}
