import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { auditMac, type AuditKey, type AuditKeyring } from './AuditKeyring.ts';
import { canonicalJson } from './auditRecord.ts';

const HEX64 = '^[0-9a-f]{64}$';

/** The head of an audit chain as anchored: which chain, how far, and a MAC only the audit key's holder can make. */
export const AuditHead = Type.Object(
  {
    /** Host id of the log. */
    host: Type.String({ minLength: 1 }),
    /** Id of the chain: the hash of its first record. A reset starts a new chain. */
    chain: Type.String({ pattern: HEX64 }),
    /** Seq of the last record covered. */
    seq: Type.Integer({ minimum: 1 }),
    /** Hash of that record. */
    hash: Type.String({ pattern: HEX64 }),
    /** Time of that record. */
    time: Type.String({ minLength: 1 }),
    /** Id of the key of `mac`. */
    kid: Type.String({ minLength: 1 }),
    /** HMAC-SHA256 (hex) of the canonical JSON of every other field. */
    mac: Type.String({ pattern: HEX64 }),
  },
  { additionalProperties: true },
);
/** A signed chain head. */
export type AuditHead = Static<typeof AuditHead>;
/** A head before it is signed. */
export type UnsignedHead = Omit<AuditHead, 'kid' | 'mac'>;

const checkHead = Compile(AuditHead);

/** The head as data, or undefined when `value` is not one. */
export function asAuditHead(value: unknown): AuditHead | undefined {
  return checkHead.Check(value) ? (value as AuditHead) : undefined;
}

/** Signs a head with `key`. */
export function signHead(head: UnsignedHead, key: AuditKey): AuditHead {
  const { host, chain, seq, hash, time } = head;
  const unsigned = { host, chain, seq, hash, time, kid: key.id };
  return { ...unsigned, mac: auditMac(key, canonicalJson(unsigned)) };
}

/** Whether a head's MAC is right: `unknown_key` when its key is not in the ring. */
export function headSignature(head: AuditHead, keyring: AuditKeyring): 'valid' | 'invalid' | 'unknown_key' {
  const key = keyring.get(head.kid);
  if (key === undefined) return 'unknown_key';
  const { mac, ...unsigned } = head;
  return auditMac(key, canonicalJson(unsigned)) === mac ? 'valid' : 'invalid';
}

/**
 * A place outside the state dir that keeps the audit chain's head, so that removing records from the end of the log,
 * or the whole log, shows. The host publishes heads; `wm audit verify` and the next start read the last one back.
 */
export interface AuditAnchor {
  /** For messages: `bus:jetstream`, `file:/var/lib/wm-anchor/heads.jsonl`. */
  readonly name: string;
  publish(head: AuditHead): Promise<void>;
  /**
   * The last head it holds; undefined when it holds none. An anchor that forgets at exit (the memory bus) holds none
   * after a restart.
   */
  latest(): Promise<AuditHead | undefined>;
  /** Releases what it holds open; safe to call twice. */
  close?(): Promise<void>;
}

/** What one anchor held when it was read. */
export interface AnchorReading {
  anchor: string;
  head: AuditHead | undefined;
}
