import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkerManagerError, writeFileAtomic } from '@worker-manager/plugin-sdk';

/** A client-secret version this plugin revoked: its fingerprint, never the secret. */
export interface RevokedVersion {
  version: string;
  createdAt: string;
  revokedAt: string;
}

interface StateFile {
  format: 1;
  revoked: Record<string, RevokedVersion[]>;
}

/** Revoked versions kept per client: enough for any rotation schedule to see its own revocations. */
const KEEP_PER_CLIENT = 32;

/**
 * What Keycloak forgets: once a rotated secret is deleted it has no trace, so without this record a second
 * `revokeVersion` (a retry after a crash) could not tell "already revoked" from "never existed". Fingerprints and
 * timestamps only, in one small JSON file under the state directory, replaced atomically.
 */
export class RevokedVersions {
  readonly #file: string;
  #state: StateFile = { format: 1, revoked: {} };
  #writes: Promise<void> = Promise.resolve();

  private constructor(file: string) {
    this.#file = file;
  }

  /** Loads the record; a missing file is an empty record, a damaged one is refused (WM_ERR_CONFIGURATION). */
  static async open(stateDir: string, fileName: string): Promise<RevokedVersions> {
    const record = new RevokedVersions(path.join(stateDir, fileName));
    let text: string;
    try {
      text = await readFile(record.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return record;
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the state file ${record.#file} cannot be read`, {
        details: { reason: 'state-unreadable', file: record.#file, errno: (error as NodeJS.ErrnoException).code ?? null },
      });
    }
    try {
      const parsed = JSON.parse(text) as Partial<StateFile>;
      if (parsed.format !== 1 || typeof parsed.revoked !== 'object' || parsed.revoked === null) throw new Error('unknown format');
      record.#state = { format: 1, revoked: parsed.revoked };
    } catch {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the state file ${record.#file} is damaged; move it away to start with an empty record of revoked versions`, {
        details: { reason: 'state-damaged', file: record.#file },
      });
    }
    return record;
  }

  /** The revoked versions of a client, newest last. */
  of(clientId: string): readonly RevokedVersion[] {
    return this.#state.revoked[clientId] ?? [];
  }

  find(clientId: string, version: string): RevokedVersion | undefined {
    return this.of(clientId).find((v) => v.version === version);
  }

  /** Records a revocation (before Keycloak is asked, so a crash in between is retried as "already revoked"). */
  async add(clientId: string, entry: RevokedVersion): Promise<void> {
    if (this.find(clientId, entry.version) !== undefined) return;
    const list = [...this.of(clientId), entry].slice(-KEEP_PER_CLIENT);
    this.#state = { format: 1, revoked: { ...this.#state.revoked, [clientId]: list } };
    const text = `${JSON.stringify(this.#state, null, 2)}\n`;
    // Writes are queued so an older state never lands after a newer one.
    const write = this.#writes.then(() => writeFileAtomic(this.#file, text));
    this.#writes = write.catch(() => {});
    await write;
  }
}
