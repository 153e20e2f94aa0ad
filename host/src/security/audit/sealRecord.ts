import { auditMac, type AuditKey } from './AuditKeyring.ts';
import type { AuditEntry } from './AuditSink.ts';
import { recordHash, redact, type AuditRecord } from './auditRecord.ts';

/**
 * Makes the record for `entry` at `seq`, after `prev`: credential-looking fields redacted, then sealed by its hash and,
 * with a key, the key's id and an HMAC of the hash. The one place records are made, for the log, for `wm audit reset`
 * and for tools that need a valid log.
 */
export function sealRecord(entry: AuditEntry, at: { seq: number; time: string; prev: string }, key: AuditKey | undefined): AuditRecord {
  const sealed = { ...(redact(entry) as AuditEntry), seq: at.seq, time: at.time, prev: at.prev, ...(key === undefined ? {} : { kid: key.id }) };
  const hash = recordHash(sealed);
  return key === undefined ? { ...sealed, hash } : { ...sealed, hash, mac: auditMac(key, hash) };
}
