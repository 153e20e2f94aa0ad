import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { envelope, errors, noContent, type HttpAnswer } from './vaultWire.ts';

/**
 * The transit secrets engine of the Vault double (reference/protocols.md §1, "Transit"): named `aes256-gcm96` keys
 * with real versions (a 256-bit key each), `vault:v<N>:<base64(nonce | ciphertext | tag)>` ciphertexts, rotation,
 * rewrap, `min_decryption_version`, and the 400 strings of Vault's transit backend (keysutil policy.go).
 *
 * Simplified, and why the plugin does not notice: no derived or convergent keys (no `context`, `nonce`), no batch
 * input, no other key types, no export, no deletion.
 */

interface KeyVersion {
  key: Buffer;
  createdAt: number;
}

interface TransitKey {
  name: string;
  versions: KeyVersion[];
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  deletionAllowed: boolean;
}

/** A key as a test sees it. */
export interface TransitKeyView {
  latestVersion: number;
  minDecryptionVersion: number;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Go's base64 error for the first byte it refuses (`illegal base64 data at input byte N`). */
function illegalBase64(text: string): string {
  const bad = [...text].findIndex((c) => !/[A-Za-z0-9+/=]/.test(c));
  return `illegal base64 data at input byte ${bad === -1 ? Math.max(0, text.length - 1) : bad}`;
}

export class TransitEngine {
  readonly #keys = new Map<string, TransitKey>();
  /** Older Vault releases answer a rotation with 204 and no body; current ones with the key. */
  legacyRotate = false;

  /** `vault write -f <mount>/keys/<name>`. */
  createKey(name: string): void {
    if (!this.#keys.has(name)) this.#keys.set(name, { name, versions: [{ key: randomBytes(32), createdAt: Date.now() }], minDecryptionVersion: 1, minEncryptionVersion: 0, deletionAllowed: false });
  }

  has(name: string): boolean {
    return this.#keys.has(name);
  }

  inspect(name: string): TransitKeyView | undefined {
    const key = this.#keys.get(name);
    return key === undefined ? undefined : { latestVersion: key.versions.length, minDecryptionVersion: key.minDecryptionVersion };
  }

  /** A request below the mount (`rest` is the path after `<mount>/`). */
  route(method: string, rest: string, body: Record<string, unknown>): HttpAnswer {
    const write = method === 'POST' || method === 'PUT';
    const op = /^(encrypt|decrypt|rewrap)\/([^/]+)$/.exec(rest);
    if (op !== null && write) {
      const [, kind, name] = op as unknown as [string, 'encrypt' | 'decrypt' | 'rewrap', string];
      if (kind === 'encrypt') return this.#encrypt(name, body);
      return kind === 'decrypt' ? this.#decrypt(name, body) : this.#rewrap(name, body);
    }
    const keyOp = /^keys\/([^/]+)(?:\/(rotate|config))?$/.exec(rest);
    if (keyOp !== null) {
      const [, name, sub] = keyOp as unknown as [string, string, string | undefined];
      if (sub === undefined && method === 'GET') {
        const key = this.#keys.get(name);
        return key === undefined ? errors(404) : envelope('transit', this.#keyBody(key));
      }
      if (sub === undefined && write) {
        this.createKey(name);
        return envelope('transit', this.#keyBody(this.#keys.get(name) as TransitKey));
      }
      if (sub === 'rotate' && write) return this.#rotate(name);
      if (sub === 'config' && write) return this.#config(name, body);
    }
    return errors(405, 'unsupported operation');
  }

  #encrypt(name: string, body: Record<string, unknown>): HttpAnswer {
    const plaintext = body['plaintext'];
    if (typeof plaintext !== 'string') return errors(400, 'missing plaintext to encrypt');
    if (!BASE64.test(plaintext)) return errors(400, illegalBase64(plaintext));
    // The ACL check already asked for `create` on a key that does not exist: reaching here, the caller may upsert it.
    this.createKey(name);
    const key = this.#keys.get(name) as TransitKey;
    const asked = typeof body['key_version'] === 'number' ? body['key_version'] : 0;
    const latest = key.versions.length;
    const version = asked === 0 ? latest : asked;
    if (version > latest || (key.minEncryptionVersion > 0 && version < key.minEncryptionVersion)) return errors(400, 'requested version for encryption is not within the min and max encryption versions');
    return envelope('transit', { ciphertext: this.#seal(key, version, Buffer.from(plaintext, 'base64')), key_version: version });
  }

  #decrypt(name: string, body: Record<string, unknown>): HttpAnswer {
    const ciphertext = body['ciphertext'];
    if (typeof ciphertext !== 'string' || ciphertext === '') return errors(400, 'missing ciphertext to decrypt');
    const key = this.#keys.get(name);
    if (key === undefined) return errors(400, 'encryption key not found');
    const opened = this.#open(key, ciphertext);
    return typeof opened === 'string' ? errors(400, opened) : envelope('transit', { plaintext: opened.toString('base64') });
  }

  #rewrap(name: string, body: Record<string, unknown>): HttpAnswer {
    const ciphertext = body['ciphertext'];
    if (typeof ciphertext !== 'string' || ciphertext === '') return errors(400, 'missing ciphertext to decrypt');
    const key = this.#keys.get(name);
    if (key === undefined) return errors(400, 'encryption key not found');
    const opened = this.#open(key, ciphertext);
    if (typeof opened === 'string') return errors(400, opened);
    const latest = key.versions.length;
    return envelope('transit', { ciphertext: this.#seal(key, latest, opened), key_version: latest });
  }

  #rotate(name: string): HttpAnswer {
    const key = this.#keys.get(name);
    if (key === undefined) return errors(400, 'key not found');
    key.versions.push({ key: randomBytes(32), createdAt: Date.now() });
    return this.legacyRotate ? noContent() : envelope('transit', this.#keyBody(key));
  }

  #config(name: string, body: Record<string, unknown>): HttpAnswer {
    const key = this.#keys.get(name);
    if (key === undefined) return errors(400, `no existing key named ${name} could be found`);
    const latest = key.versions.length;
    let minDecryption = key.minDecryptionVersion;
    let minEncryption = key.minEncryptionVersion;
    if (typeof body['min_decryption_version'] === 'number') {
      const v = body['min_decryption_version'] === 0 ? 1 : body['min_decryption_version'];
      if (v < 0) return errors(400, 'min decryption version cannot be negative');
      if (v !== minDecryption && v > latest) return errors(400, `cannot set min decryption version of ${v}, latest key version is ${latest}`);
      minDecryption = v;
    }
    if (typeof body['min_encryption_version'] === 'number') {
      const v = body['min_encryption_version'];
      if (v < 0) return errors(400, 'min encryption version cannot be negative');
      if (v !== minEncryption && v > latest) return errors(400, `cannot set min encryption version of ${v}, latest key version is ${latest}`);
      minEncryption = v;
    }
    if (minEncryption > 0 && minEncryption < minDecryption) {
      return errors(400, `cannot set min encryption/decryption values; min encryption version of ${minEncryption} must be greater than or equal to min decryption version of ${minDecryption}`);
    }
    key.minDecryptionVersion = minDecryption;
    key.minEncryptionVersion = minEncryption;
    if (typeof body['deletion_allowed'] === 'boolean') key.deletionAllowed = body['deletion_allowed'];
    return envelope('transit', this.#keyBody(key));
  }

  #seal(key: TransitKey, version: number, plaintext: Buffer): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', (key.versions[version - 1] as KeyVersion).key, nonce);
    const sealed = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `vault:v${version}:${sealed.toString('base64')}`;
  }

  /** The plaintext, or Vault's 400 string for why it cannot be had (keysutil DecryptWithFactory, in its order). */
  #open(key: TransitKey, value: string): Buffer | string {
    if (!value.startsWith('vault:v')) return 'invalid ciphertext: no prefix';
    const rest = value.slice('vault:v'.length);
    const colon = rest.indexOf(':');
    if (colon === -1) return 'invalid ciphertext: wrong number of fields';
    const raw = rest.slice(0, colon);
    if (!/^[+-]?\d+$/.test(raw)) return 'invalid ciphertext: version number could not be decoded';
    const version = Number(raw) === 0 ? 1 : Number(raw);
    if (version > key.versions.length) return 'invalid ciphertext: version is too new';
    if (key.minDecryptionVersion > 0 && version < key.minDecryptionVersion) return 'ciphertext or signature version is disallowed by policy (too old)';
    const b64 = rest.slice(colon + 1);
    if (!BASE64.test(b64)) return 'invalid ciphertext: could not decode base64';
    const sealed = Buffer.from(b64, 'base64');
    if (sealed.length < NONCE_BYTES + TAG_BYTES) return 'invalid ciphertext: unable to decrypt';
    try {
      const decipher = createDecipheriv('aes-256-gcm', (key.versions[version - 1] as KeyVersion).key, sealed.subarray(0, NONCE_BYTES));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return 'invalid ciphertext: unable to decrypt';
    }
  }

  #keyBody(key: TransitKey): Record<string, unknown> {
    return {
      allow_plaintext_backup: false,
      auto_rotate_period: 0,
      deletion_allowed: key.deletionAllowed,
      derived: false,
      exportable: false,
      imported_key: false,
      keys: Object.fromEntries(key.versions.map((v, i) => [String(i + 1), Math.floor(v.createdAt / 1000)])),
      latest_version: key.versions.length,
      min_available_version: 0,
      min_decryption_version: key.minDecryptionVersion,
      min_encryption_version: key.minEncryptionVersion,
      name: key.name,
      supports_decryption: true,
      supports_derivation: true,
      supports_encryption: true,
      supports_signing: false,
      type: 'aes256-gcm96',
    };
  }
}
