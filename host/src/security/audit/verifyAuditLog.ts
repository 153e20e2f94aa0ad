import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { AnchorReading } from './AuditAnchor.ts';
import { auditMac, type AuditKeyring } from './AuditKeyring.ts';
import { GENESIS_HASH, recordHash } from './auditRecord.ts';
import { anchorFinding, supersededByReset, type AnchorBreak } from './anchorFinding.ts';

/** Why a log fails verification. */
export type AuditBreak =
  /** The line is not a JSON record with seq, time, prev and hash. */
  | 'unreadable'
  /** The record's content does not match its hash. */
  | 'altered'
  /** The record carries no MAC (with a keyring: written before signing, or stripped). */
  | 'unsigned'
  /** The record's MAC is not what the audit key gives: the record or the chain was rewritten without the key. */
  | 'forged'
  /** Its seq is not the previous one plus one (a record before it was removed, or records were reordered). */
  | 'out_of_sequence'
  /** Its `prev` is not the previous record's hash (a record was replaced with a re-hashed one, or removed). */
  | 'chain_broken'
  /** The file ends in the middle of a line. */
  | 'truncated'
  /** A record or an anchored head is signed with a key that was not given. */
  | 'unknown_key'
  /** The log disagrees with an anchor (see {@link AnchorBreak}). */
  | Exclude<AnchorBreak, 'unknown_key'>;

/** What `verifyAuditLog` checks against. */
export interface VerifyOptions {
  /** Keys to check every record's MAC with; without, only the hash chain is checked (`signed: false`). */
  keyring?: AuditKeyring | undefined;
  /** The heads the anchors held when read; the log must continue each. */
  anchors?: readonly AnchorReading[] | undefined;
}

/** The result of checking a log. */
export type AuditVerification =
  | {
    ok: true;
    records: number;
    lastSeq: number;
    lastHash: string;
    /** Hash of record 1 (the chain's id); undefined for an empty log. */
    chain: string | undefined;
    /** Whether every record's MAC was checked. */
    signed: boolean;
    /** Ids of the keys the records are signed with, in order of first use. */
    keys: string[];
    /**
     * Per anchor, the seq of the head it holds (undefined when it holds none); `superseded` when it holds a head of
     * the chain the log's reset ended (not a finding: the host anchors the new chain at its next start).
     */
    anchors: Array<{ anchor: string; seq: number | undefined; superseded?: true }>;
    /** Records after the last head every anchor holds: written, not yet anchored (they could be cut unnoticed). */
    unanchored: number;
    /** When record 1 is an operator's reset (`wm audit reset`): who, when and why. */
    reset?: { by: string; time: string; reason: string | undefined };
  }
  | {
    ok: false;
    /** Records read and found intact before the break. */
    records: number;
    broken: { line?: number; seq?: number; reason: AuditBreak; message: string };
  };

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Reads an audit log from its first line and returns the first record that breaks it: altered (hash), rewritten
 * without the key (MAC), unsigned, removed or reordered (seq, prev), unreadable, or a last line cut mid-way. Then the
 * end of the log is compared with every anchored head: the log must exist and hold records (deleted, emptied), be
 * the anchored chain (replayed), reach the anchored seq (tail_cut) and hold the anchored record there (replayed).
 * A missing file with no anchored head is not a finding: the ENOENT error is thrown for the caller to report.
 */
export async function verifyAuditLog(file: string, options: VerifyOptions = {}): Promise<AuditVerification> {
  const { keyring } = options;
  const readings = options.anchors ?? [];
  const wanted = new Set(readings.flatMap((r) => (r.head === undefined ? [] : [r.head.seq])));
  const hashes = new Map<number, string>();
  const keys: string[] = [];
  let lineNo = 0;
  let records = 0;
  let seq = 0;
  let prev = GENESIS_HASH;
  let chain: string | undefined;
  let first: Record<string, unknown> | undefined;
  let rest = '';
  const fail = (reason: AuditBreak, message: string, at?: number): AuditVerification => ({
    ok: false, records, broken: { line: lineNo, ...(at === undefined ? {} : { seq: at }), reason, message },
  });
  const check = (line: string): AuditVerification | undefined => {
    lineNo++;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return fail('unreadable', `line ${lineNo} is not JSON`);
    }
    if (typeof record !== 'object' || record === null || !Number.isSafeInteger(record['seq']) || typeof record['time'] !== 'string' || typeof record['prev'] !== 'string' || typeof record['hash'] !== 'string' || !HEX64.test(record['hash'])) {
      return fail('unreadable', `line ${lineNo} is not an audit record (seq, time, prev, hash)`);
    }
    const at = record['seq'] as number;
    const hash = record['hash'];
    if (recordHash(record as never) !== hash) return fail('altered', `record ${at} (line ${lineNo}) does not match its hash: its content was changed`, at);
    if (keyring !== undefined) {
      const kid = record['kid'];
      if (typeof record['mac'] !== 'string' || typeof kid !== 'string') return fail('unsigned', `record ${at} (line ${lineNo}) carries no MAC: it was written before records were signed, or its MAC was stripped`, at);
      const key = keyring.get(kid);
      if (key === undefined) return fail('unknown_key', `record ${at} (line ${lineNo}) is signed with key ${kid}, which was not given (list earlier keys in security.audit.previousKeys)`, at);
      if (auditMac(key, hash) !== record['mac']) return fail('forged', `record ${at} (line ${lineNo}) does not carry a valid MAC under key ${kid}: it was rewritten by someone without the audit key`, at);
      if (keys.at(-1) !== kid && !keys.includes(kid)) keys.push(kid);
    }
    if (at !== seq + 1) return fail('out_of_sequence', `record ${at} (line ${lineNo}) follows record ${seq}: records were removed or reordered`, at);
    if (record['prev'] !== prev) return fail('chain_broken', `record ${at} (line ${lineNo}) does not chain to the record before it: that record was replaced or removed`, at);
    if (at === 1) {
      chain = hash;
      first = record;
    }
    if (wanted.has(at)) hashes.set(at, hash);
    records++;
    seq = at;
    prev = hash;
    return undefined;
  };
  let exists = true;
  try {
    await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || wanted.size === 0) throw error;
    exists = false;
  }
  if (exists) {
    for await (const chunk of createReadStream(file, { encoding: 'utf8' })) {
      const lines = (rest + (chunk as string)).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        const problem = check(line);
        if (problem !== undefined) return problem;
      }
    }
    if (rest.length > 0) {
      lineNo++;
      return fail('truncated', `the log ends in the middle of line ${lineNo} (after record ${seq})`);
    }
  }
  const superseded = new Set(readings.filter((r) => r.head !== undefined && supersededByReset(r.head, first)).map((r) => r.anchor));
  const current = readings.filter((r) => !superseded.has(r.anchor));
  for (const reading of current) {
    const finding = await anchorFinding(reading, { file, exists, lastSeq: seq, chain, hashAt: (at) => hashes.get(at) }, keyring);
    if (finding !== undefined) return { ok: false, records, broken: { reason: finding.reason, message: finding.message } };
  }
  const heads = readings.map((r): { anchor: string; seq: number | undefined; superseded?: true } => (superseded.has(r.anchor) ? { anchor: r.anchor, seq: undefined, superseded: true } : { anchor: r.anchor, seq: r.head?.seq }));
  const anchoredSeq = heads.length === 0 ? 0 : Math.max(...heads.map((h) => h.seq ?? 0));
  const result: AuditVerification = { ok: true, records, lastSeq: seq, lastHash: prev, chain, signed: keyring !== undefined, keys, anchors: heads, unanchored: seq - anchoredSeq };
  if (first?.['kind'] === 'audit.reset') {
    const principal = first['principal'] as { id?: unknown } | undefined;
    const details = first['details'] as { reason?: unknown } | undefined;
    result.reset = { by: String(principal?.id ?? 'unknown'), time: first['time'] as string, reason: typeof details?.reason === 'string' ? details.reason : undefined };
  }
  return result;
}
