import { mkdir, open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { StateDirLock } from '../../StateDirLock.ts';
import { signHead, type AnchorReading, type AuditAnchor } from './AuditAnchor.ts';
import type { AuditKeyring } from './AuditKeyring.ts';
import { canonicalJson, GENESIS_HASH } from './auditRecord.ts';
import { sealRecord } from './sealRecord.ts';
import { verifyAuditLog, type AuditVerification } from './verifyAuditLog.ts';

/** What a reset needs: the log, the key, the anchors, and who acknowledges it and why. */
export interface ResetAuditChainOptions {
  file: string;
  stateDir: string;
  hostId: string;
  keyring: AuditKeyring;
  anchors: readonly AuditAnchor[];
  /** The operator's words, kept in the reset record. */
  reason: string;
  /** Who acknowledges the reset (the OS user running `wm audit reset`). */
  operator: string;
  /** Reset a log that verifies too. */
  force?: boolean;
  now?: () => Date;
}

/** The outcome: refused (the log verifies and `force` was not given), or the new chain. */
export type ResetAuditChainResult =
  | { reset: false; verification: AuditVerification }
  | { reset: true; chain: string; setAside: string | undefined; found: string; anchors: string[] };

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * An operator's acknowledged reset of the audit chain, the only way a new chain begins once a chain is anchored. With
 * the state dir locked (no host may run), it reads what the anchors hold and verifies the log, sets the old file aside
 * as evidence (`audit.log.reset-<time>`), writes record 1 of a new chain (kind `audit.reset`: who, why, what verify
 * found, the heads the anchors held), signed like any record, and publishes its head to every anchor. The host then
 * starts on the new chain. Throws HOST_ERR_STATE_DIR_LOCKED while a host runs, and the anchors' errors.
 */
export async function resetAuditChain(o: ResetAuditChainOptions): Promise<ResetAuditChainResult> {
  const lock = await StateDirLock.acquire(o.stateDir, { hostId: o.hostId });
  try {
    const readings: AnchorReading[] = [];
    for (const anchor of o.anchors) readings.push({ anchor: anchor.name, head: await anchor.latest() });
    let verification: AuditVerification | undefined;
    try {
      verification = await verifyAuditLog(o.file, { keyring: o.keyring, anchors: readings });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (verification?.ok === true && o.force !== true) return { reset: false, verification };
    const found = verification === undefined ? 'no log' : verification.ok ? 'intact' : verification.broken.reason;
    const now = (o.now ?? (() => new Date()))();
    let setAside: string | undefined;
    const exists = await stat(o.file).then(() => true, (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    });
    if (exists) {
      setAside = `${o.file}.reset-${now.toISOString().replace(/[:.]/g, '-')}`;
      await rename(o.file, setAside);
    }
    const record = sealRecord({
      kind: 'audit.reset',
      principal: { id: o.operator, kind: 'user', source: 'cli' },
      action: 'audit:reset',
      resource: `AuditLog::${o.hostId}`,
      result: 'ok',
      details: {
        reason: o.reason,
        found,
        ...(verification !== undefined && !verification.ok ? { finding: verification.broken.message } : {}),
        previous: readings.filter((r) => r.head !== undefined).map((r) => ({ anchor: r.anchor, chain: r.head?.chain, seq: r.head?.seq, hash: r.head?.hash })),
        setAside: setAside === undefined ? null : path.basename(setAside),
      },
    }, { seq: 1, time: now.toISOString(), prev: GENESIS_HASH }, o.keyring.current);
    await mkdir(path.dirname(o.file), { recursive: true, mode: 0o700 });
    const handle = await open(o.file, 'wx', 0o600);
    try {
      await handle.writeFile(`${canonicalJson(record)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await syncDir(path.dirname(o.file));
    const head = signHead({ host: o.hostId, chain: record.hash, seq: 1, hash: record.hash, time: record.time }, o.keyring.current);
    for (const anchor of o.anchors) await anchor.publish(head);
    return { reset: true, chain: record.hash, setAside, found, anchors: o.anchors.map((a) => a.name) };
  } finally {
    for (const anchor of o.anchors) await anchor.close?.();
    await lock.release();
  }
}
