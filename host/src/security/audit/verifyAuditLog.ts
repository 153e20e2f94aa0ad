import { createReadStream } from 'node:fs';
import { GENESIS_HASH, recordHash } from './auditRecord.ts';

/** Why a record breaks the chain. */
export type AuditBreak =
  /** The line is not a JSON record with seq, time, prev and hash. */
  | 'unreadable'
  /** The record's content does not match its hash. */
  | 'altered'
  /** Its seq is not the previous one plus one (a record before it was removed, or records were reordered). */
  | 'out_of_sequence'
  /** Its `prev` is not the previous record's hash (a record was replaced with a re-hashed one, or removed). */
  | 'chain_broken'
  /** The file ends in the middle of a line. */
  | 'truncated';

/** The result of checking a log. */
export type AuditVerification =
  | { ok: true; records: number; lastSeq: number; lastHash: string }
  | {
    ok: false;
    /** Records read and found intact before the break. */
    records: number;
    broken: { line: number; seq?: number; reason: AuditBreak; message: string };
  };

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Reads an audit log from its first line and returns the first record that breaks the chain: altered (hash), removed
 * or reordered (seq, prev), unreadable, or a last line cut mid-way. Records removed from the end cannot be seen from
 * the file alone; the `ci.security.auth.*` events carry each record's seq and hash for that comparison.
 */
export async function verifyAuditLog(file: string): Promise<AuditVerification> {
  let lineNo = 0;
  let records = 0;
  let seq = 0;
  let prev = GENESIS_HASH;
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
    if (recordHash(record as never) !== record['hash']) return fail('altered', `record ${at} (line ${lineNo}) does not match its hash: its content was changed`, at);
    if (at !== seq + 1) return fail('out_of_sequence', `record ${at} (line ${lineNo}) follows record ${seq}: records were removed or reordered`, at);
    if (record['prev'] !== prev) return fail('chain_broken', `record ${at} (line ${lineNo}) does not chain to the record before it: that record was replaced or removed`, at);
    records++;
    seq = at;
    prev = record['hash'] as string;
    return undefined;
  };
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
  return { ok: true, records, lastSeq: seq, lastHash: prev };
}
