import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { EventBus } from '../../bus/EventBus.ts';
import { createEvent } from '../../bus/createEvent.ts';
import type { Subjects } from '../../bus/subjects.ts';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { signHead, type AnchorReading, type AuditAnchor, type AuditHead } from './AuditAnchor.ts';
import type { AuditKeyring } from './AuditKeyring.ts';
import type { AuditDurability, AuditEntry, AuditSink } from './AuditSink.ts';
import { canonicalJson, GENESIS_HASH, type AuditRecord } from './auditRecord.ts';
import { HeadAnchoring } from './HeadAnchoring.ts';
import { readLastLine, type LastLine } from './readLastLine.ts';
import { resumeChain } from './resumeChain.ts';
import { sealRecord } from './sealRecord.ts';

/** Where a host with this state dir keeps its audit log. */
export function auditLogPath(stateDir: string): string {
  return path.join(stateDir, 'audit', 'audit.log');
}

/** The key that signs records and the anchors that keep the chain's head. */
export interface AuditSigning {
  keyring: AuditKeyring;
  anchors: readonly AuditAnchor[];
  /** When heads are published (`security.audit.anchor.everyRecords` / `everyMs`); after every write when absent. */
  every?: { records: number; ms: number };
}

/** What the log needs; the bus, subjects and host id together enable the `ci.security.auth.*` events. */
export interface AuditLogDeps {
  stateDir: string;
  logger?: Logger;
  bus?: EventBus;
  subjects?: Subjects;
  hostId?: string;
  /**
   * Loads the key and opens the anchors, at start. The host always gives it; without it the log writes unsigned,
   * unanchored records (the format before keyed audit, which `wm audit verify` rejects) and is used only to measure
   * what signing costs.
   */
  signing?: () => Promise<AuditSigning>;
  /** Most records written (and fsynced) together; default 256. */
  maxBatch?: number;
  /**
   * Longest time, in ms, a record written with `until: 'written'` waits for its fsync when no durable record comes
   * to take it along; default 20. It bounds what a power loss can take of those records.
   */
  syncLagMs?: number;
  now?: () => Date;
}

interface Pending {
  entry: AuditEntry;
  time: string;
  until: AuditDurability;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The audit trail: an append-only file of JSON lines in `<stateDir>/audit/audit.log`, each record sealed with the
 * sha256 of its canonical JSON and chained to the previous one by `prev`, so `verifyAuditLog` finds any record that
 * was altered, removed or reordered.
 *
 * Keyed and anchored (docs/audit.md): each record also carries `kid` and `mac`, an HMAC-SHA256 of its hash under the
 * audit key, which is kept outside the state dir, so whoever can write the state dir cannot forge a record or rewrite
 * the chain with recomputed hashes. The chain's head (seq, hash, time, signed) is published to anchors outside the
 * state dir (`HeadAnchoring`), so that cutting records from the end, emptying or deleting the file, or putting back
 * another one shows. At start the log must continue what every anchor holds (`resumeChain`); otherwise the host
 * refuses with a coded error until an operator acknowledges a new chain (`wm audit reset`): it never starts a new
 * chain silently.
 *
 * Durability: `record()` resolves once its record is written and `fdatasync`ed (`until: 'durable'`, the default), or,
 * for reads that change nothing (`until: 'written'`), once it is written to the file: it then survives the host
 * process dying, and is fsynced with the next durable record or at the latest `syncLagMs` later, so a sequential
 * reader does not pay an fsync per call. Writes are serialized through one queue and group-committed: records that
 * arrive while a batch is being written go together in the next write and share its one fsync, so the cost of
 * durability is paid per batch, not per record. A host crash can lose only records whose `record()` had not resolved;
 * a power loss can also lose `written` records of the last `syncLagMs`. A line torn by a crash is set aside at the
 * next start (kept next to the log as `audit.log.torn-<time>`) and the chain continues from the last whole record.
 * Heads are anchored, and decision events published, only for synced records, so an anchor never holds a head the
 * log could lose to a power cut.
 *
 * Failures reject with HOST_ERR_AUDIT_UNAVAILABLE, so the call the record covers does not run. A failed write is cut
 * back off the file and later records go on (`write_failed`: a full disk may get space back). A failed sync is
 * different: the kernel may already have dropped the pages it could not write and will not report it again, so a
 * later sync that succeeds proves nothing about what the file holds. The log then refuses every later record
 * (`sync_failed`), which stops every guarded call until the host is restarted and the tail checked again, and logs
 * the unsynced records at level fatal: that line is the copy of them that survives.
 *
 * Authorization decisions are also published as `ci.security.auth.granted` / `denied` (with the record's seq and
 * hash, an anchor outside this file) once durable; a publish failure is logged, never fails the record.
 */
export class AuditLog implements AuditSink {
  readonly file: string;
  readonly #deps: AuditLogDeps;
  readonly #log: Logger | undefined;
  readonly #maxBatch: number;
  readonly #syncLagMs: number;
  readonly #now: () => Date;
  #handle: FileHandle | undefined;
  #opening: Promise<FileHandle> | undefined;
  #seq = 0;
  #prev = GENESIS_HASH;
  #chain: string | undefined;
  #signing: AuditSigning | undefined;
  #anchoring: HeadAnchoring | undefined;
  #size = 0;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #syncFailed: Error | undefined;
  /** Records written since the last fsync: anchored and published once synced, logged at fatal if the sync fails. */
  #unsynced: AuditRecord[] = [];
  /** The sync lag ran out: the flush loop syncs at its next turn. */
  #syncDue = false;
  #syncTimer: NodeJS.Timeout | undefined;

  constructor(deps: AuditLogDeps) {
    this.#deps = deps;
    this.file = auditLogPath(deps.stateDir);
    this.#log = deps.logger?.child({ component: 'audit' });
    this.#maxBatch = deps.maxBatch ?? 256;
    this.#syncLagMs = deps.syncLagMs ?? 20;
    this.#now = deps.now ?? (() => new Date());
  }

  /** Seq of the last record written (0 for an empty log). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Hash of the last record written. */
  get lastHash(): string {
    return this.#prev;
  }

  /** Id of the chain (the hash of its record 1); undefined while the log is empty. */
  get chain(): string | undefined {
    return this.#chain;
  }

  /** Seq of the last head every anchor accepted (0 before any, and when unsigned). */
  get anchoredSeq(): number {
    return this.#anchoring?.anchoredSeq ?? 0;
  }

  /** Opens the log and finds where the chain ends. Safe to call twice; `record()` calls it when needed. */
  async start(): Promise<void> {
    await this.#open();
  }

  /** Writes what is queued, anchors the last head, then closes the file. A later `record()` opens it again. */
  async stop(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
    if (this.#unsynced.length > 0 && this.#syncFailed === undefined) {
      this.#syncDue = true;
      await (this.#flushing ??= this.#flush());
    }
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await this.#anchoring?.flush();
    for (const anchor of this.#signing?.anchors ?? []) await anchor.close?.();
    const handle = this.#handle;
    this.#handle = undefined;
    this.#opening = undefined;
    await handle?.close();
  }

  record(entry: AuditEntry, options: { until?: AuditDurability } = {}): Promise<void> {
    if (this.#syncFailed !== undefined) return Promise.reject(this.#closed());
    const time = this.#now().toISOString();
    const until = options.until ?? 'durable';
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ entry, time, until, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  #open(): Promise<FileHandle> {
    this.#opening ??= (async () => {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      if (this.#deps.signing !== undefined && this.#signing === undefined) {
        const signing = await this.#deps.signing();
        this.#anchoring = new HeadAnchoring({ anchors: signing.anchors, every: signing.every ?? { records: 1, ms: 1_000 }, logger: this.#log });
        this.#signing = signing;
      }
      await this.#resume();
      const handle = await open(this.file, 'a', 0o600);
      this.#size = (await handle.stat()).size;
      this.#handle = handle;
      return handle;
    })().catch((error: unknown) => {
      this.#opening = undefined;
      throw error;
    });
    return this.#opening;
  }

  /**
   * Finds where the chain ends and checks it against the anchors (refusing to go on when it does not continue what
   * they hold); then sets a torn last line aside.
   */
  async #resume(): Promise<void> {
    const size = await stat(this.file).then((s) => s.size, (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    const tail = size === undefined || size === 0 ? undefined : await readLastLine(this.file);
    const readings: AnchorReading[] = [];
    for (const anchor of this.#signing?.anchors ?? []) readings.push({ anchor: anchor.name, head: await anchor.latest() });
    const position = await resumeChain(this.file, { exists: size !== undefined, tail }, { keyring: this.#signing?.keyring, readings });
    if (tail?.torn !== undefined) await this.#setTornAside(tail);
    this.#seq = position.seq;
    this.#prev = position.prev;
    this.#chain = position.chain;
    const { last } = position;
    if (this.#signing === undefined) return;
    if (last === undefined) {
      this.#log?.info({ file: this.file, anchors: readings.map((r) => r.anchor) }, 'audit log is new and no anchor holds a head: a new chain begins with the first record');
    } else if (!position.anchored) {
      // An anchor that was just added, or one that forgets (the memory bus): anchor where the log stands now.
      this.#log?.warn({ file: this.file, seq: last.seq, anchors: readings.map((r) => r.anchor) }, 'no audit anchor holds a head of this chain; anchoring its current head');
      this.#anchoring?.appended(this.#head(last), 1);
    }
  }

  /** Moves the bytes after the last newline (a write cut by a crash) to `audit.log.torn-<time>`. */
  async #setTornAside(tail: LastLine): Promise<void> {
    const torn = tail.torn as Buffer;
    const aside = `${this.file}.torn-${this.#now().toISOString().replace(/[:.]/g, '-')}`;
    const handle = await open(this.file, 'r+');
    try {
      const out = await open(aside, 'wx', 0o600);
      try {
        await out.writeFile(torn);
        await out.sync();
      } finally {
        await out.close();
      }
      await handle.truncate(tail.tornOffset);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.#log?.warn({ file: this.file, aside, bytes: torn.length }, 'audit log ended in a partial record (a crash mid-write, or a truncation); it was moved aside and the chain continues from the last whole record');
  }

  #head(record: AuditRecord): AuditHead {
    const signing = this.#signing as AuditSigning;
    return signHead({ host: this.#deps.hostId ?? 'host', chain: this.#chain as string, seq: record.seq, hash: record.hash, time: record.time }, signing.keyring.current);
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0 || this.#syncDue) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        if (this.#syncFailed !== undefined) {
          for (const p of batch) p.reject(this.#closed());
          this.#syncDue = false;
          continue;
        }
        if (batch.length > 0) {
          try {
            await this.#write(batch);
          } catch (error) {
            for (const p of batch) p.reject(error);
            continue;
          }
        }
        const durable = batch.filter((p) => p.until === 'durable');
        for (const p of batch) if (p.until === 'written') p.resolve();
        if (durable.length > 0 || this.#syncDue) await this.#sync(durable);
        else this.#syncLater();
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Arms the sync lag for records written without a sync, unless it is armed already. */
  #syncLater(): void {
    if (this.#syncTimer !== undefined || this.#unsynced.length === 0) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      this.#syncDue = true;
      this.#flushing ??= this.#flush();
    }, this.#syncLagMs);
    this.#syncTimer.unref();
  }

  /**
   * Syncs everything written so far, then settles `waiting`, anchors the new head and publishes the synced records'
   * events. A failed sync closes the log (see the class comment).
   */
  async #sync(waiting: Pending[]): Promise<void> {
    this.#syncDue = false;
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    const records = this.#unsynced;
    this.#unsynced = [];
    if (records.length > 0) {
      try {
        await (this.#handle as FileHandle).datasync();
      } catch (error) {
        this.#syncFailed = error as Error;
        this.#log?.fatal({ file: this.file, err: (error as Error).message, records }, 'audit records could not be made durable; the audit log refuses every later record (and so every guarded call) until the host restarts');
        for (const p of waiting) p.reject(this.#closed());
        return;
      }
    }
    for (const p of waiting) p.resolve();
    const last = records.at(-1);
    if (last !== undefined && this.#anchoring !== undefined) this.#anchoring.appended(this.#head(last), records.length);
    for (const record of records) this.#publish(record);
  }

  /** Appends one batch (not synced). A failed write is cut back off the file and leaves the chain state as it was. */
  async #write(batch: Pending[]): Promise<AuditRecord[]> {
    const handle = this.#handle ?? (await this.#open());
    const key = this.#signing?.keyring.current;
    let seq = this.#seq;
    let prev = this.#prev;
    const records: AuditRecord[] = [];
    const lines: string[] = [];
    for (const p of batch) {
      const record = sealRecord(p.entry, { seq: ++seq, time: p.time, prev }, key);
      // Canonical on disk too, so a line reads the same in any tool and in verify.
      lines.push(`${canonicalJson(record)}\n`);
      records.push(record);
      prev = record.hash;
    }
    const data = Buffer.from(lines.join(''), 'utf8');
    try {
      const { bytesWritten } = await handle.write(data);
      if (bytesWritten !== data.length) throw new Error(`short write: ${bytesWritten} of ${data.length} bytes`);
    } catch (error) {
      // A partial write would break the chain for every later record: remove it so the next batch continues cleanly.
      await handle.truncate(this.#size).catch(() => undefined);
      this.#log?.error({ file: this.file, records: batch.length, err: (error as Error).message }, 'audit records could not be written');
      throw hostError('HOST_ERR_AUDIT_UNAVAILABLE', `audit records could not be written to ${this.file}: ${(error as Error).message}`, { details: { reason: 'write_failed', file: this.file } });
    }
    this.#size += data.length;
    this.#seq = seq;
    this.#prev = prev;
    if (this.#chain === undefined && records[0]?.seq === 1) this.#chain = records[0].hash;
    this.#unsynced.push(...records);
    return records;
  }

  #closed(): Error {
    return hostError('HOST_ERR_AUDIT_UNAVAILABLE', `the audit log ${this.file} could not sync a record (${this.#syncFailed?.message ?? 'unknown error'}) and takes no more until the host restarts`, {
      details: { reason: 'sync_failed', file: this.file },
    });
  }

  #publish(record: AuditRecord): void {
    const { bus, subjects, hostId } = this.#deps;
    if (bus === undefined || subjects === undefined || record.kind !== 'authz.decision' || record.decision === undefined) return;
    const event = createEvent(subjects, hostId ?? 'host', record.decision === 'allow' ? 'authGranted' : 'authDenied', {
      principal: record.principal.id,
      principalKind: record.principal.kind,
      action: record.action,
      resource: record.resource,
      decision: record.decision,
      policies: record.policies ?? [],
      auditSeq: record.seq,
      auditHash: record.hash,
    }, { correlationId: record.correlationId, tenant: record.principal.tenant, subject: record.resource });
    bus.publish(event).catch((error: unknown) => {
      this.#log?.warn({ seq: record.seq, err: (error as Error).message }, 'audit event could not be published (the record is in the log)');
    });
  }
}
