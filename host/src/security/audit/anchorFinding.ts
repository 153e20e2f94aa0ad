import { headSignature, type AnchorReading, type AuditHead } from './AuditAnchor.ts';
import type { AuditKeyring } from './AuditKeyring.ts';

/** How a log disagrees with the head an anchor holds. */
export type AnchorBreak =
  /** No log file, but the anchor holds a head. */
  | 'deleted'
  /** A log file without a single record, but the anchor holds a head. */
  | 'emptied'
  /** The log ends before the anchored head: records were cut from its end (or an older copy was put back). */
  | 'tail_cut'
  /** The log is another chain, or its record at the anchored seq is another record: the file was replaced. */
  | 'replayed'
  /** The anchored head does not carry a valid MAC under the audit key: someone else wrote the anchor. */
  | 'anchor_forged'
  /** The anchored head is signed with a key that was not given. */
  | 'unknown_key';

/** What is known of the log when it is compared with an anchor. */
export interface LogEnd {
  file: string;
  exists: boolean;
  /** Seq of the last whole record (0 when there is none). */
  lastSeq: number;
  /** Hash of record 1 (the chain's id), when the log has one. */
  chain: string | undefined;
  /** The hash of the record with this seq, if the log holds it. */
  hashAt(seq: number): Promise<string | undefined> | string | undefined;
}

/** Record 1 of a log, as far as telling a reset goes. */
export type FirstRecord = Record<string, unknown> | undefined;

/**
 * Whether `head` belongs to a chain that an operator's reset ended: the log's record 1 is the `audit.reset` of the
 * head's host, recorded after the head. Such a head can still turn up last on the bus (the host's outbox held it while
 * NATS was down, and sent it after the reset's own head); it is not a finding. A replayed old log never passes: its
 * record 1 is older than the head the anchor holds, and only the key's holder can make a reset record.
 */
export function supersededByReset(head: AuditHead, first: FirstRecord): boolean {
  if (first === undefined || first['kind'] !== 'audit.reset' || first['resource'] !== `AuditLog::${head.host}` || typeof first['time'] !== 'string') return false;
  return first['hash'] !== head.chain && Date.parse(first['time']) > Date.parse(head.time);
}

/** First 12 hex characters: enough to tell chains and records apart in a message. */
export const short = (hex: string): string => hex.slice(0, 12);

/** Whether the log continues what `reading` holds; the break and a message that names it otherwise. */
export async function anchorFinding(reading: AnchorReading, log: LogEnd, keyring: AuditKeyring | undefined): Promise<{ reason: AnchorBreak; message: string; head: AuditHead } | undefined> {
  const { head, anchor } = reading;
  if (head === undefined) return undefined;
  const at = `${anchor} holds record ${head.seq} of chain ${short(head.chain)}`;
  if (keyring !== undefined) {
    const signature = headSignature(head, keyring);
    if (signature === 'unknown_key') return { reason: 'unknown_key', head, message: `the head in ${anchor} is signed with key ${head.kid}, which was not given (list earlier keys in security.audit.previousKeys)` };
    if (signature === 'invalid') return { reason: 'anchor_forged', head, message: `the head in ${anchor} (record ${head.seq}) does not carry a valid MAC under key ${head.kid}: the anchor was written by someone without the audit key` };
  }
  if (!log.exists) return { reason: 'deleted', head, message: `there is no audit log at ${log.file}, but ${at}: the log was deleted` };
  if (log.lastSeq === 0) return { reason: 'emptied', head, message: `the audit log ${log.file} holds no record, but ${at}: the log was emptied` };
  if (log.chain !== head.chain) {
    return { reason: 'replayed', head, message: `the audit log is chain ${log.chain === undefined ? '(none: it does not start at record 1)' : short(log.chain)}, but ${at}: the log was replaced by an older or foreign one` };
  }
  if (log.lastSeq < head.seq) {
    const missing = head.seq - log.lastSeq;
    return { reason: 'tail_cut', head, message: `the audit log ends at record ${log.lastSeq}, but ${at}: ${missing} record${missing === 1 ? ' was' : 's were'} cut from its end (or an older copy of the log was put back)` };
  }
  const hash = await log.hashAt(head.seq);
  if (hash !== head.hash) {
    return { reason: 'replayed', head, message: `record ${head.seq} of the audit log (${hash === undefined ? 'missing' : `hash ${short(hash)}`}) is not the record ${anchor} holds (hash ${short(head.hash)}): the log was replaced by one with another history` };
  }
  return undefined;
}
