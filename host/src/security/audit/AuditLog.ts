import { mkdir, open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { EventBus } from '../../bus/EventBus.ts';
import { createEvent } from '../../bus/createEvent.ts';
import type { Subjects } from '../../bus/subjects.ts';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { AuditEntry, AuditSink } from './AuditSink.ts';
import { canonicalJson, GENESIS_HASH, recordHash, redact, type AuditRecord } from './auditRecord.ts';
import { readLastLine } from './readLastLine.ts';

/** Where a host with this state dir keeps its audit log. */
export function auditLogPath(stateDir: string): string {
  return path.join(stateDir, 'audit', 'audit.log');
}

/** What the log needs; the bus, subjects and host id together enable the `ci.security.auth.*` events. */
export interface AuditLogDeps {
  stateDir: string;
  logger?: Logger;
  bus?: EventBus;
  subjects?: Subjects;
  hostId?: string;
  /** Most records written (and fsynced) together; default 256. */
  maxBatch?: number;
  now?: () => Date;
}

interface Pending {
  entry: AuditEntry;
  time: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The audit trail: an append-only file of JSON lines in `<stateDir>/audit/audit.log`, each record sealed with the
 * sha256 of its canonical JSON and chained to the previous one by `prev`, so `verifyAuditLog` finds any record that
 * was altered, removed or reordered.
 *
 * Durability: `record()` resolves once its record is written and `fdatasync`ed. Writes are serialized through one
 * queue and group-committed: records that arrive while a batch is being written go together in the next write and
 * share its one fsync, so the cost of durability is paid per batch, not per record. A crash can lose only records
 * whose `record()` had not resolved; a line torn by the crash is set aside at the next start (kept next to the log as
 * `audit.log.torn-<time>`) and the chain continues from the last whole record.
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
  readonly #now: () => Date;
  #handle: FileHandle | undefined;
  #opening: Promise<FileHandle> | undefined;
  #seq = 0;
  #prev = GENESIS_HASH;
  #size = 0;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #syncFailed: Error | undefined;

  constructor(deps: AuditLogDeps) {
    this.#deps = deps;
    this.file = auditLogPath(deps.stateDir);
    this.#log = deps.logger?.child({ component: 'audit' });
    this.#maxBatch = deps.maxBatch ?? 256;
    this.#now = deps.now ?? (() => new Date());
  }

  /** Seq of the last durable record (0 for an empty log). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Hash of the last durable record. */
  get lastHash(): string {
    return this.#prev;
  }

  /** Opens the log and finds where the chain ends. Safe to call twice; `record()` calls it when needed. */
  async start(): Promise<void> {
    await this.#open();
  }

  /** Writes what is queued, then closes the file. A later `record()` opens it again. */
  async stop(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
    const handle = this.#handle;
    this.#handle = undefined;
    this.#opening = undefined;
    await handle?.close();
  }

  record(entry: AuditEntry): Promise<void> {
    if (this.#syncFailed !== undefined) return Promise.reject(this.#closed());
    const time = this.#now().toISOString();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ entry, time, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  #open(): Promise<FileHandle> {
    this.#opening ??= (async () => {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await this.#recoverTail();
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

  /** Reads the last record to continue the chain; sets a torn last line aside. */
  async #recoverTail(): Promise<void> {
    const size = await stat(this.file).then((s) => s.size, (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return 0;
      throw error;
    });
    if (size === 0) return;
    const tail = await readLastLine(this.file);
    if (tail.torn !== undefined) {
      const aside = `${this.file}.torn-${this.#now().toISOString().replace(/[:.]/g, '-')}`;
      const handle = await open(this.file, 'r+');
      try {
        const torn = await open(aside, 'wx', 0o600);
        try {
          await torn.writeFile(tail.torn);
          await torn.sync();
        } finally {
          await torn.close();
        }
        await handle.truncate(tail.tornOffset);
        await handle.sync();
      } finally {
        await handle.close();
      }
      this.#log?.warn({ file: this.file, aside, bytes: tail.torn.length }, 'audit log ended in a partial record (a crash mid-write, or a truncation); it was moved aside and the chain continues from the last whole record');
    }
    if (tail.line === undefined) return;
    let last: AuditRecord;
    try {
      last = JSON.parse(tail.line) as AuditRecord;
    } catch {
      throw hostError('HOST_ERR_AUDIT_LOG_CORRUPT', `the last record of ${this.file} is not JSON; run wm audit verify`, { details: { file: this.file } });
    }
    if (!Number.isSafeInteger(last.seq) || typeof last.hash !== 'string' || recordHash(last) !== last.hash) {
      throw hostError('HOST_ERR_AUDIT_LOG_CORRUPT', `the last record of ${this.file} does not match its hash; run wm audit verify`, { details: { file: this.file, seq: last.seq } });
    }
    this.#seq = last.seq;
    this.#prev = last.hash;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        if (this.#syncFailed !== undefined) {
          for (const p of batch) p.reject(this.#closed());
          continue;
        }
        try {
          const records = await this.#write(batch);
          for (const p of batch) p.resolve();
          for (const record of records) this.#publish(record);
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /**
   * Appends one batch and syncs it. A failed write is cut back off the file and leaves the chain state as it was; a
   * failed sync closes the log (see the class comment).
   */
  async #write(batch: Pending[]): Promise<AuditRecord[]> {
    const handle = this.#handle ?? (await this.#open());
    let seq = this.#seq;
    let prev = this.#prev;
    const records: AuditRecord[] = [];
    const lines: string[] = [];
    for (const p of batch) {
      const sealed = { ...(redact(p.entry) as AuditEntry), seq: ++seq, time: p.time, prev };
      const record: AuditRecord = { ...sealed, hash: recordHash(sealed) };
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
    try {
      await handle.datasync();
    } catch (error) {
      this.#syncFailed = error as Error;
      this.#log?.fatal({ file: this.file, err: (error as Error).message, records }, 'audit records could not be made durable; the audit log refuses every later record (and so every guarded call) until the host restarts');
      throw this.#closed();
    }
    this.#size += data.length;
    this.#seq = seq;
    this.#prev = prev;
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
