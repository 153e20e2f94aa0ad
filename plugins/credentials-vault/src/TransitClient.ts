import { WorkerManagerError, type CredentialHandlers, type TransitOpened, type TransitRotated, type TransitSealed } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import type { VaultResponseFailure } from './vaultError.ts';
import type { VaultSession } from './VaultSession.ts';

type TransitHandlers = Required<Pick<CredentialHandlers, 'encrypt' | 'decrypt' | 'rotateKey' | 'rewrap'>>;

/** The key version a Vault ciphertext names (`vault:v<N>:...`). */
const VERSION_PREFIX = /^vault:v(\d+):/;

/**
 * Capability `credentials.transit` over Vault's transit engine: encrypt, decrypt, rotate a key, rewrap. Requests go
 * through node-vault's generic `write`/`read` with the configured mount: its `encryptData`, `decryptData` and
 * `rewrapData` helpers hard-code the mount `transit`, send every argument (the key name included) as the request body,
 * and it has no helper to rotate a key.
 *
 * Plaintext is only ever in the request body and the answer: never in a log line, an error message or its details
 * (Vault's own error strings name a rule, not the data).
 */
export class TransitClient {
  readonly #session: VaultSession;
  readonly #mount: string;

  constructor(config: ResolvedConfig, session: VaultSession) {
    this.#session = session;
    this.#mount = config.transitMount;
  }

  handlers(): TransitHandlers {
    return {
      encrypt: ({ key, plaintext }) => this.#seal('encrypt', key, { plaintext }),
      decrypt: ({ key, ciphertext }) => this.decrypt(key, ciphertext),
      rewrap: ({ key, ciphertext }) => this.#seal('rewrap', key, { ciphertext }),
      rotateKey: ({ key }) => this.rotateKey(key),
    };
  }

  async decrypt(key: string, ciphertext: string): Promise<TransitOpened> {
    const p = this.#path('decrypt', key);
    const body = (await this.#session.call<unknown>({
      operation: 'transit decrypt',
      path: p,
      idempotent: true,
      send: (c) => c.write(p, { ciphertext }),
      refuse: (f) => this.#refusal(f, key),
    })) as { data?: { plaintext?: unknown } } | undefined;
    const plaintext = body?.data?.plaintext;
    if (typeof plaintext !== 'string') throw this.#malformed('transit decrypt', p, 'no plaintext');
    return { plaintext };
  }

  /**
   * Rotates the key. Current Vault answers with the key (its `latest_version`); older releases answer 204, and the key
   * is then read (which needs `read` on `<mount>/keys/<key>`).
   */
  async rotateKey(key: string): Promise<TransitRotated> {
    const p = `${this.#path('keys', key)}/rotate`;
    const body = (await this.#session.call<unknown>({
      operation: 'transit key rotation',
      path: p,
      idempotent: false,
      send: (c) => c.write(p, {}),
      refuse: (f) => this.#refusal(f, key),
    })) as { data?: { latest_version?: unknown } } | string | undefined;
    const latest = typeof body === 'object' ? body.data?.latest_version : undefined;
    if (typeof latest === 'number') return { latestVersion: latest };
    const keyPath = this.#path('keys', key);
    const read = (await this.#session.call<unknown>({
      operation: 'transit key read',
      path: keyPath,
      idempotent: true,
      send: (c) => c.read(keyPath),
      refuse: (f) => this.#refusal(f, key),
    })) as { data?: { latest_version?: unknown } } | undefined;
    const version = read?.data?.latest_version;
    if (typeof version !== 'number') throw this.#malformed('transit key read', keyPath, 'no latest_version');
    return { latestVersion: version };
  }

  async #seal(kind: 'encrypt' | 'rewrap', key: string, payload: { plaintext: string } | { ciphertext: string }): Promise<TransitSealed> {
    const p = this.#path(kind, key);
    const operation = `transit ${kind}`;
    const body = (await this.#session.call<unknown>({
      operation,
      path: p,
      idempotent: true,
      send: (c) => c.write(p, payload),
      refuse: (f) => this.#refusal(f, key),
    })) as { data?: { ciphertext?: unknown; key_version?: unknown } } | undefined;
    const ciphertext = body?.data?.ciphertext;
    if (typeof ciphertext !== 'string') throw this.#malformed(operation, p, 'no ciphertext');
    // Vault before 1.5 does not say which version it used; its ciphertext always does.
    const keyVersion = typeof body?.data?.key_version === 'number' ? body.data.key_version : Number(VERSION_PREFIX.exec(ciphertext)?.[1] ?? Number.NaN);
    if (!Number.isInteger(keyVersion) || keyVersion < 1) throw this.#malformed(operation, p, 'no key version');
    return { ciphertext, keyVersion };
  }

  #path(kind: 'encrypt' | 'decrypt' | 'rewrap' | 'keys', key: string): string {
    return `${this.#mount}/${kind}/${encodeURIComponent(key)}`;
  }

  /** Transit's 400 answers that mean something to the caller; anything else keeps the usual mapping. */
  #refusal(f: VaultResponseFailure, key: string): WorkerManagerError | undefined {
    if (f.status !== 400) return undefined;
    const details = { key, mount: this.#mount, status: f.status, vaultErrors: f.errors.slice(0, 3) };
    if (f.errors.some((e) => e === 'encryption key not found' || e === 'key not found')) {
      return new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no transit key '${key}' in the engine at ${this.#mount}`, { details: { ...details, reason: 'no-key' } });
    }
    if (f.errors.some((e) => e.includes('disallowed by policy (too old)'))) {
      return new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `the ciphertext was made by a version of transit key '${key}' below its min_decryption_version; it can no longer be opened`, {
        details: { ...details, reason: 'key-version-retired' },
      });
    }
    if (f.errors.some((e) => e.startsWith('invalid ciphertext') || e.startsWith('cipher: message authentication failed'))) {
      return new WorkerManagerError('WM_ERR_VALIDATION', `the ciphertext was not made by transit key '${key}', or was altered (${f.errors.slice(0, 1).join('')})`, {
        details: { ...details, reason: 'bad-ciphertext' },
      });
    }
    return undefined;
  }

  #malformed(operation: string, path: string, what: string): WorkerManagerError {
    return new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `Vault ${operation} ${path}: the answer has ${what}`, { details: { operation, path, reason: 'malformed-answer' } });
  }
}
