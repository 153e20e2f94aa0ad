import { hostError } from '../../errors.ts';
import type { AnchorReading } from './AuditAnchor.ts';
import { auditMac, type AuditKeyring } from './AuditKeyring.ts';
import { GENESIS_HASH, recordHash, type AuditRecord } from './auditRecord.ts';
import { anchorFinding, supersededByReset } from './anchorFinding.ts';
import type { LastLine } from './readLastLine.ts';
import { readFirstLine, readLinesBackward } from './readLinesBackward.ts';

/** Where the chain goes on after a start. */
export interface ChainPosition {
  seq: number;
  prev: string;
  /** Hash of record 1; undefined for an empty log. */
  chain: string | undefined;
  /** The last record, when there is one. */
  last: AuditRecord | undefined;
  /** Whether any anchor held a head (all of them agreed with the log). */
  anchored: boolean;
}

function corrupt(file: string, reason: string, message: string, seq?: number): Error {
  return hostError('HOST_ERR_AUDIT_LOG_CORRUPT', `${message}; run wm audit verify`, { details: { file, reason, ...(seq === undefined ? {} : { seq }) } });
}

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decides whether the log can be continued: its last whole record must match its hash and, with a keyring, carry a
 * valid MAC; and the log must continue the head every anchor holds (same chain, not shorter, same record at the
 * anchored seq). Throws HOST_ERR_AUDIT_LOG_CORRUPT, HOST_ERR_AUDIT_KEY_UNAVAILABLE or HOST_ERR_AUDIT_ANCHOR_MISMATCH
 * (`details.reason` as in `wm audit verify`); the host never starts a new chain in their place.
 */
export async function resumeChain(file: string, end: { exists: boolean; tail: LastLine | undefined }, options: { keyring: AuditKeyring | undefined; readings: readonly AnchorReading[] }): Promise<ChainPosition> {
  const { keyring, readings } = options;
  let last: AuditRecord | undefined;
  if (end.tail?.line !== undefined) {
    const record = parse(end.tail.line);
    if (record === undefined) throw corrupt(file, 'unreadable', `the last record of ${file} is not JSON`);
    if (!Number.isSafeInteger(record['seq']) || typeof record['hash'] !== 'string' || recordHash(record as never) !== record['hash']) {
      throw corrupt(file, 'altered', `the last record of ${file} does not match its hash`, record['seq'] as number);
    }
    last = record as unknown as AuditRecord;
    if (keyring !== undefined) {
      if (typeof last.mac !== 'string' || typeof last.kid !== 'string') throw corrupt(file, 'unsigned', `the last record of ${file} (seq ${last.seq}) carries no MAC: it was written before records were signed, or its MAC was stripped`, last.seq);
      const key = keyring.get(last.kid);
      if (key === undefined) {
        throw hostError('HOST_ERR_AUDIT_KEY_UNAVAILABLE', `audit key: the last record of ${file} (seq ${last.seq}) is signed with key ${last.kid}, which is not configured (list it in security.audit.previousKeys)`, { details: { file, kid: last.kid } });
      }
      if (auditMac(key, last.hash) !== last.mac) throw corrupt(file, 'forged', `the last record of ${file} (seq ${last.seq}) does not carry a valid MAC under key ${last.kid}: it was written without the audit key`, last.seq);
    }
  }
  let chain: string | undefined;
  let first: Record<string, unknown> | undefined;
  if (last !== undefined) {
    first = last.seq === 1 ? (last as unknown as Record<string, unknown>) : parse((await readFirstLine(file)) ?? '');
    if (first?.['seq'] === 1 && typeof first['hash'] === 'string') chain = first['hash'];
    else first = undefined;
    // Heads name the chain by its record 1: a signed log must have it.
    if (keyring !== undefined && chain === undefined) throw corrupt(file, 'out_of_sequence', `${file} does not begin with record 1: records were removed from its start`);
  }
  const lastSeq = last?.seq ?? 0;
  const tornOffset = end.tail?.tornOffset ?? 0;
  const hashAt = async (seq: number): Promise<string | undefined> => {
    if (seq === lastSeq) return last?.hash;
    // The log runs ahead of the anchor (heads follow records): look back for the anchored record.
    for await (const line of readLinesBackward(file, tornOffset)) {
      const record = parse(line);
      const at = record?.['seq'];
      if (typeof at !== 'number' || at < seq) return undefined;
      if (at === seq) return typeof record?.['hash'] === 'string' ? record['hash'] : undefined;
    }
    return undefined;
  };
  // A head of the chain a reset ended counts as none: the log is anchored afresh.
  const current = readings.map((r) => (r.head !== undefined && supersededByReset(r.head, first) ? { anchor: r.anchor, head: undefined } : r));
  for (const reading of current) {
    const finding = await anchorFinding(reading, { file, exists: end.exists, lastSeq, chain, hashAt }, keyring);
    if (finding === undefined) continue;
    if (finding.reason === 'unknown_key') throw hostError('HOST_ERR_AUDIT_KEY_UNAVAILABLE', `audit key: ${finding.message}`, { details: { anchor: reading.anchor, kid: finding.head.kid } });
    throw hostError('HOST_ERR_AUDIT_ANCHOR_MISMATCH', `${finding.message}. The host does not start a new chain by itself: run wm audit verify, keep the evidence, then acknowledge a new chain with wm audit reset`, {
      details: { file, reason: finding.reason, anchor: reading.anchor, anchored: { chain: finding.head.chain, seq: finding.head.seq, hash: finding.head.hash }, lastSeq },
    });
  }
  return { seq: lastSeq, prev: last?.hash ?? GENESIS_HASH, chain, last, anchored: current.some((r) => r.head !== undefined) };
}
