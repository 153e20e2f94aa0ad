import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '@worker-manager/plugin-sdk';

/** A lease the plugin holds: what renewing and revoking it needs. Never the credential it was issued with. */
export interface LeaseRecord {
  /** The contract version that names the lease: `lease-` and 16 hex digits of a SHA-256 of the lease id. */
  handle: string;
  /** The secret name it was read under. */
  name: string;
  leaseId: string;
  issuedAt: number;
  /** The TTL it was issued with, in seconds: what each renewal asks for. */
  durationS: number;
  /** When it ends unless renewed (ms since epoch). */
  expiresAt: number;
  renewable: boolean;
  /** Vault granted less than asked at the last renewal: the lease reached its max TTL and ends at `expiresAt`. */
  final: boolean;
  renewedAt?: number;
}

function isRecord(v: unknown, handle: string): v is LeaseRecord {
  const r = v as Partial<LeaseRecord> | null;
  const time = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0;
  return (
    typeof r === 'object' && r !== null && r.handle === handle && typeof r.name === 'string' && typeof r.leaseId === 'string' && r.leaseId !== '' &&
    time(r.issuedAt) && time(r.durationS) && time(r.expiresAt) && typeof r.renewable === 'boolean' && typeof r.final === 'boolean' &&
    (r.renewedAt === undefined || time(r.renewedAt))
  );
}

const HANDLE = /^lease-[0-9a-f]{16}$/;

/** The version naming a lease: derived from the lease id, which it does not reveal. */
export function handleOf(leaseId: string): string {
  return `lease-${createHash('sha256').update(leaseId).digest('hex').slice(0, 16)}`;
}

/** True for a string that can name a lease (and so is safe as a file name). */
export function isHandle(version: string): boolean {
  return HANDLE.test(version);
}

/**
 * The leases this instance holds, one small JSON file each under `<stateDir>/vault-leases/` (mode 0600, folder 0700),
 * so every thread of the instance (any of them may be asked to release a lease another one read) and a restarted
 * plugin find them. A file holds the lease id and timings, never the credential; its name is the handle.
 */
export class LeaseStore {
  readonly #dir: string;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open(stateDir: string): Promise<LeaseStore> {
    const dir = path.join(stateDir, 'vault-leases');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new LeaseStore(dir);
  }

  async put(record: LeaseRecord): Promise<void> {
    await writeFileAtomic(this.#file(record.handle), JSON.stringify(record));
  }

  /** The record of a handle; undefined when no thread holds it (never issued, released, or ended). */
  async get(handle: string): Promise<LeaseRecord | undefined> {
    if (!isHandle(handle)) return undefined;
    let text: string;
    try {
      text = await readFile(this.#file(handle), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      return isRecord(parsed, handle) ? parsed : undefined;
    } catch {
      // A damaged record cannot be renewed or revoked; the lease ends at its TTL in Vault.
      return undefined;
    }
  }

  async remove(handle: string): Promise<void> {
    if (isHandle(handle)) await rm(this.#file(handle), { force: true });
  }

  /** Every held lease, oldest first. */
  async list(): Promise<LeaseRecord[]> {
    const names = (await readdir(this.#dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
    const records = await Promise.all(names.map((h) => this.get(h)));
    return records.filter((r): r is LeaseRecord => r !== undefined).sort((a, b) => a.issuedAt - b.issuedAt);
  }

  #file(handle: string): string {
    return path.join(this.#dir, `${handle}.json`);
  }
}
