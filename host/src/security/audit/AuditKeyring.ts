import { createHash, createHmac } from 'node:crypto';

/** Shortest key material accepted: an HMAC-SHA256 key should carry at least 256 bits. */
export const MIN_AUDIT_KEY_BYTES = 32;

/** One audit key: the id records name it by, and its material (never logged, never in an error). */
export interface AuditKey {
  readonly id: string;
  readonly material: Buffer;
}

/**
 * The id of a key: 16 hex characters of a sha256 over a fixed label and the material. Records carry it (`kid`) so
 * that verification picks the right key after a rotation; it reveals nothing usable about a random 256-bit key.
 */
export function auditKeyId(material: Buffer): string {
  return createHash('sha256').update('worker-manager audit key id\0').update(material).digest('hex').slice(0, 16);
}

/** An audit key from its material. */
export function auditKey(material: Buffer): AuditKey {
  return { id: auditKeyId(material), material };
}

/** HMAC-SHA256 (hex) of `text` under `key`. */
export function auditMac(key: AuditKey, text: string): string {
  return createHmac('sha256', key.material).update(text).digest('hex');
}

/** The key new records are signed with, and the earlier keys older records were signed with (after a rotation). */
export class AuditKeyring {
  readonly current: AuditKey;
  readonly #byId = new Map<string, AuditKey>();

  constructor(current: AuditKey, previous: readonly AuditKey[] = []) {
    this.current = current;
    for (const key of [...previous, current]) this.#byId.set(key.id, key);
  }

  /** The key with this id, or undefined when it was not given. */
  get(id: string): AuditKey | undefined {
    return this.#byId.get(id);
  }

  /** Ids of every key held, the current one last. */
  get ids(): string[] {
    return [...this.#byId.keys()].filter((id) => id !== this.current.id).concat(this.current.id);
  }
}
