import { createHash } from 'node:crypto';
import type { AuditEntry } from './AuditSink.ts';

/** `prev` of the first record of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** One line of the audit log: the entry, its place in the chain, and the hash that seals it. */
export interface AuditRecord extends AuditEntry {
  /** 1 for the first record, then +1 per record: a gap means a removed record. */
  seq: number;
  /** When the entry was recorded (ISO 8601, UTC). */
  time: string;
  /** `hash` of the previous record ({@link GENESIS_HASH} for the first). */
  prev: string;
  /** Id of the audit key whose MAC the record carries (signed records only; sealed by `hash`). */
  kid?: string;
  /** sha256 (hex) of the canonical JSON of every other field but `mac`. */
  hash: string;
  /** HMAC-SHA256 (hex) of `hash` under the audit key `kid`: only the key's holder can seal a record. */
  mac?: string;
}

/**
 * JSON with object keys sorted at every level and no whitespace, so a record hashes the same whoever serializes it.
 * Undefined fields are left out, as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The hash a record must carry: sha256 over the canonical JSON of the record without its `hash` and `mac`. */
export function recordHash(record: Omit<AuditRecord, 'hash'> & { hash?: unknown; mac?: unknown }): string {
  const { hash: _hash, mac: _mac, ...sealed } = record;
  return createHash('sha256').update(canonicalJson(sealed)).digest('hex');
}

// Field names whose values are credentials. Audit entries are built from names, ids and versions; this is the second
// line of defence for a caller that puts a whole object in `details`.
const SENSITIVE_KEY = /^(token|access_?token|id_?token|refresh_?token|bearer|authorization|password|passphrase|secret|secret_?value|client_?secret|private_?key|value|values|data|material|plaintext)$/i;
// A JWT (`eyJ...` header), a bearer header value, or a PEM private key, wherever it appears.
const SENSITIVE_TEXT = /(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)|(^bearer\s+\S+)|(-----BEGIN [A-Z ]*PRIVATE KEY-----)/i;
const REDACTED = '[redacted]';

/** A deep copy of `value` with credential-looking fields and strings replaced by `[redacted]`. */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return SENSITIVE_TEXT.test(value) ? REDACTED : value;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(redact);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SENSITIVE_KEY.test(k) && v !== undefined ? REDACTED : redact(v);
  return out;
}
