import { readdir, readFile, unlink, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@worker-manager/plugin-sdk';
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import { hostError } from '../../errors.ts';
import { FailedVersion, isFinished, JournalEntry } from './RotationRecord.ts';

// `failedVersions` came after the first files were written: a journal without it has none.
const JournalFile = Type.Object(
  { format: Type.Literal(1), entries: Type.Array(JournalEntry), failedVersions: Type.Optional(Type.Array(FailedVersion)) },
  { additionalProperties: false },
);
const checkJournal = Compile(JournalFile);

/**
 * The rotation engine's state store: every record, written to `<dir>/journal.json` before each step (temp file, fsync,
 * rename, folder fsync), so that after a crash the file says which step each rotation had reached, together with the
 * versions that failed rotations created (which must never become current again). Saves requested while one is
 * being written share the next write (group commit), so parallel rotations do not queue one fsync each.
 */
export class RotationJournal {
  readonly #dir: string;
  readonly #file: string;
  readonly #historyLimit: number;
  #entries: JournalEntry[] = [];
  #failed: FailedVersion[] = [];
  #tail: Promise<void> = Promise.resolve();
  #next: Promise<void> | undefined;

  constructor(dir: string, historyLimit: number) {
    this.#dir = dir;
    this.#file = path.join(dir, 'journal.json');
    this.#historyLimit = historyLimit;
  }

  get file(): string {
    return this.#file;
  }

  /** Reads the journal; a missing file is an empty journal, a damaged one refuses (never read as empty). */
  async load(): Promise<JournalEntry[]> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // Temp files of a write the crash interrupted: the rename never happened, so the journal is the previous state.
    for (const name of await readdir(this.#dir)) {
      if (name.startsWith('.journal.json.') && name.endsWith('.tmp')) await unlink(path.join(this.#dir, name)).catch(() => undefined);
    }
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.#entries = [];
        this.#failed = [];
        return this.#entries;
      }
      throw hostError('HOST_ERR_ROTATION_JOURNAL_CORRUPT', `cannot read the rotation journal ${this.#file}`, { cause: error, details: { file: this.#file } });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw hostError('HOST_ERR_ROTATION_JOURNAL_CORRUPT', `the rotation journal ${this.#file} is not valid JSON`, { cause: error, details: { file: this.#file } });
    }
    if (!checkJournal.Check(parsed)) {
      const first = [...checkJournal.Errors(parsed)][0];
      throw hostError('HOST_ERR_ROTATION_JOURNAL_CORRUPT', `the rotation journal ${this.#file} is damaged: ${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim(), {
        details: { file: this.#file, path: first?.instancePath ?? '' },
      });
    }
    this.#entries = parsed.entries;
    this.#failed = parsed.failedVersions ?? [];
    return this.#entries;
  }

  /** Live entries, oldest first; callers mutate them and then `save()`. */
  entries(): JournalEntry[] {
    return this.#entries;
  }

  add(entry: JournalEntry): void {
    this.#entries.push(entry);
  }

  /** Marks a version failed (once); the next `save()` makes it durable. */
  markFailed(mark: FailedVersion): void {
    if (this.failedVersion(mark.credentials, mark.name, mark.version) === undefined) this.#failed.push(mark);
  }

  /** The failure mark of a version, if a failed rotation created it. */
  failedVersion(credentials: string, name: string, version: string): FailedVersion | undefined {
    return this.#failed.find((f) => f.credentials === credentials && f.name === name && f.version === version);
  }

  /** Failure marks, oldest first (live: set `revoked` on one, then `save()`). */
  failedVersions(): FailedVersion[] {
    return this.#failed;
  }

  /** Resolves once a write that started after this call is durable. */
  save(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    const next: Promise<void> = this.#tail
      .catch(() => undefined)
      .then(() => {
        if (this.#next === next) this.#next = undefined;
        return this.#write();
      });
    this.#next = next;
    this.#tail = next;
    return next;
  }

  #trim(): void {
    // A finished record that still owes an event stays until it is published, on top of the history.
    const droppable = (e: JournalEntry): boolean => isFinished(e) && (e.outbox === undefined || e.outbox.length === 0);
    let excess = this.#entries.filter(droppable).length - this.#historyLimit;
    if (excess <= 0) return;
    this.#entries = this.#entries.filter((e) => !(droppable(e) && excess-- > 0));
  }

  /**
   * A mark goes only once its version is revoked in the store (which refuses to promote a revoked version) and more
   * than `historyLimit` such marks are kept: a version that may still be promoted keeps its mark.
   */
  #trimFailed(): void {
    let excess = this.#failed.filter((f) => f.revoked === true).length - this.#historyLimit;
    if (excess <= 0) return;
    this.#failed = this.#failed.filter((f) => !(f.revoked === true && excess-- > 0));
  }

  async #write(): Promise<void> {
    this.#trim();
    this.#trimFailed();
    // Serialised synchronously, before the first await: the write holds every change made before it started.
    const text = JSON.stringify({ format: 1, entries: this.#entries, failedVersions: this.#failed });
    await writeFileAtomic(this.#file, text, { mode: 0o600 });
  }
}
