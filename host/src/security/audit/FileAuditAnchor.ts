import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { hostError } from '../../errors.ts';
import { asAuditHead, type AuditAnchor, type AuditHead } from './AuditAnchor.ts';
import { canonicalJson } from './auditRecord.ts';
import { readLastLine } from './readLastLine.ts';

/**
 * An anchor in a file outside the state dir: one JSON line per head, appended, the last one current. It is as far out
 * of an attacker's reach as the file is (another mount, another owner, a WORM share); in the embedded default it sits
 * beside the state dir, which only stops someone who can write the state dir alone.
 *
 * Each head is written at once, so it survives the host process being killed; it is fdatasynced at most once per
 * `syncEveryMs` (and at close), so that a second fsync per audit write does not double the cost of an audited call on
 * a disk the log shares. A power loss can lose the heads of that last interval: the anchor then lags the log, which
 * the next start accepts (it anchors the log's head again), and records in that interval could be cut unnoticed.
 */
export class FileAuditAnchor implements AuditAnchor {
  readonly name: string;
  readonly file: string;
  readonly #syncEveryMs: number;
  #handle: FileHandle | undefined;
  #lastSync = 0;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;

  constructor(file: string, options: { syncEveryMs?: number } = {}) {
    this.file = file;
    this.name = `file:${file}`;
    this.#syncEveryMs = options.syncEveryMs ?? 1_000;
  }

  async publish(head: AuditHead): Promise<void> {
    if (this.#handle === undefined) {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      this.#handle = await open(this.file, 'a', 0o600);
    }
    await this.#handle.write(`${canonicalJson(head)}\n`);
    const wait = this.#lastSync + this.#syncEveryMs - Date.now();
    if (wait <= 0) await this.#sync();
    else if (this.#syncTimer === undefined) {
      this.#syncTimer = setTimeout(() => void this.#sync().catch(() => undefined), wait);
      this.#syncTimer.unref();
    }
  }

  #sync(): Promise<void> {
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    this.#lastSync = Date.now();
    const handle = this.#handle;
    this.#syncing = handle === undefined ? Promise.resolve() : handle.datasync();
    return this.#syncing;
  }

  async latest(): Promise<AuditHead | undefined> {
    let last;
    try {
      last = await readLastLine(this.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw hostError('HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE', `audit anchor ${this.file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { details: { anchor: this.name } });
    }
    // A torn last line is a head whose write did not finish: the one before it is the last anchored.
    if (last.line === undefined) return undefined;
    let head: AuditHead | undefined;
    try {
      head = asAuditHead(JSON.parse(last.line));
    } catch {
      head = undefined;
    }
    if (head === undefined) throw hostError('HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE', `the last line of audit anchor ${this.file} is not a chain head`, { details: { anchor: this.name } });
    return head;
  }

  /** Syncs what was written since the last sync, and closes the file. */
  async close(): Promise<void> {
    await this.#syncing?.catch(() => undefined);
    if (this.#handle !== undefined) await this.#sync();
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}
