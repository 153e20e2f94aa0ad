import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync, type ResourceQuota, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import { Lease } from './Lease.ts';

/**
 * The record of a create the engine has not finished: the worker was accepted, its image is being pulled (or its
 * container made) by a task in some plugin thread. It holds what any thread needs to answer for the worker and what
 * a later thread needs to finish the create, and never a secret value: secrets and registry credentials live only in
 * the memory of the task that got them from the create call.
 */
export interface PendingMarker {
  version: 1;
  /** The current attempt of this create (each resume writes a new one): a task that finds another was superseded. */
  token: string;
  workerId: string;
  /** Hash of the spec: a repeated create with another spec is WM_ERR_ALREADY_EXISTS. */
  specHash: string;
  /** The spec (secret names, never values), to make the container from. */
  spec: RuntimeSpec;
  image: string;
  /** The incarnation's epoch and creation time, given to the container when it is made. */
  epoch: string;
  createdAt: string;
  /** The worker's public labels (the spec's and the owner labels), as listWorkers reports them. */
  labels: Record<string, string>;
  resources: ResourceQuota;
  /** Names of the secret mounts the worker was created with; a task without their values cannot make it. */
  secretNames: string[];
  /** The pull needs the registry credential secret. */
  registryAuth: boolean;
  /** What the worker waits for now: `ImagePull`, then `ContainerCreating`. */
  pendingReason: 'ImagePull' | 'ContainerCreating';
  /** Tasks started for this create: the first one, plus one per resume after a task died. */
  attempts: number;
  /** Set when the create failed: the worker is Failed with this reason until it is terminated. */
  failure?: { reason: string; message: string; at: string };
}

const MARKER = 'marker.json';
const LEASE = 'lease';
const CANCELLED = '.cancelled';
const ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A task notices a cancel within a beat; a tombstone is kept far longer than that. */
const TOMBSTONE_TTL_MS = 10 * 60_000;

/**
 * Pending creates on disk, shared by every thread of the instance (same state dir): one folder per worker id,
 * `<dir>/<workerId>/`, holding `marker.json` ({@link PendingMarker}) and `lease` (a {@link Lease} kept fresh by the
 * thread whose task runs the create).
 *
 * A folder, not a single file, so that a cancel cannot be undone by a racing write: terminate removes the whole
 * folder, after which the task's atomic replace of its marker (a temporary file in that folder, then a rename) fails
 * for want of the folder instead of bringing the marker back. Making the folder (an exclusive mkdir) claims the id.
 *
 * A cancel also leaves a tombstone, `<dir>/.cancelled/<workerId>` (the time of the cancel), because a marker can go
 * two ways: terminate cancelled the create (its task removes what it made), or another task of the same create
 * finished it (what the task made may be the worker's container: it must stay).
 */
export class PendingStore {
  readonly #dir: string;
  readonly #staleMs: number;

  constructor(dir: string, staleMs: number) {
    this.#dir = dir;
    this.#staleMs = staleMs;
    mkdirSync(path.join(dir, CANCELLED), { recursive: true, mode: 0o700 });
  }

  #folder(workerId: string): string {
    return path.join(this.#dir, workerId);
  }

  /** The lease of a worker's pending create (a new holder token each call). */
  lease(workerId: string): Lease {
    return new Lease(path.join(this.#folder(workerId), LEASE), this.#staleMs);
  }

  /**
   * Claims `marker.workerId` for a new pending create: makes its folder, takes its lease and writes the marker, in
   * that order, so no other thread can resume a claim whose marker is not written yet. Undefined when the id is
   * already claimed.
   */
  claim(marker: PendingMarker): Lease | undefined {
    try {
      mkdirSync(this.#folder(marker.workerId), { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw error;
    }
    const lease = this.lease(marker.workerId);
    if (!lease.acquire()) return undefined;
    writeFileAtomicSync(path.join(this.#folder(marker.workerId), MARKER), JSON.stringify(marker));
    return lease;
  }

  /** The marker of a worker, or undefined when it has none (or an unreadable one). */
  read(workerId: string): PendingMarker | undefined {
    if (!ID.test(workerId)) return undefined;
    let text: string;
    try {
      text = readFileSync(path.join(this.#folder(workerId), MARKER), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const m = JSON.parse(text) as PendingMarker;
      return m.version === 1 && m.workerId === workerId && typeof m.token === 'string' ? m : undefined;
    } catch {
      return undefined;
    }
  }

  /** Worker ids that have a folder (a marker, or a claim in progress). */
  ids(): string[] {
    try {
      return readdirSync(this.#dir).filter((name) => ID.test(name));
    } catch {
      return [];
    }
  }

  /** Every readable marker. */
  list(): PendingMarker[] {
    return this.ids().flatMap((id) => this.read(id) ?? []);
  }

  /**
   * Replaces the marker if it is still the attempt `expectedToken` (by default the marker's own token); false once
   * the create was cancelled or taken over.
   */
  update(marker: PendingMarker, expectedToken = marker.token): boolean {
    if (this.read(marker.workerId)?.token !== expectedToken) return false;
    try {
      writeFileAtomicSync(path.join(this.#folder(marker.workerId), MARKER), JSON.stringify(marker));
      return true;
    } catch {
      // The folder went (terminate) between the check and the write.
      return false;
    }
  }

  /** Ends a create whose container now stands for the worker: removes its folder if `token` is still the attempt. */
  finish(workerId: string, token: string): boolean {
    if (this.read(workerId)?.token !== token) return false;
    this.#removeFolder(workerId);
    return true;
  }

  /** Cancels a worker's pending create (terminate): the tombstone first, then the folder. */
  cancel(workerId: string): void {
    if (!ID.test(workerId)) return;
    writeFileSync(path.join(this.#dir, CANCELLED, workerId), String(Date.now()), { mode: 0o600 });
    this.#removeFolder(workerId);
  }

  /** True when the worker's pending create was cancelled at or after `sinceMs`. */
  cancelledSince(workerId: string, sinceMs: number): boolean {
    try {
      return Number(readFileSync(path.join(this.#dir, CANCELLED, workerId), 'utf8')) >= sinceMs;
    } catch {
      return false;
    }
  }

  /** Drops tombstones no task can still need. */
  expireTombstones(now = Date.now()): void {
    const dir = path.join(this.#dir, CANCELLED);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) if (now - mtimeOf(path.join(dir, name)) > TOMBSTONE_TTL_MS) rmSync(path.join(dir, name), { force: true });
  }

  #removeFolder(workerId: string): void {
    // A task replacing its marker at this moment adds a temporary file: retry until the folder is really gone.
    rmSync(this.#folder(workerId), { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
  }

  /**
   * Removes the folder of a claim whose thread died between making it and writing the marker: no marker, and no
   * file in it touched for twice the lease's stale time.
   */
  removeAbandonedClaim(workerId: string): void {
    const folder = this.#folder(workerId);
    const newest = Math.max(mtimeOf(folder), mtimeOf(path.join(folder, LEASE)));
    if (this.read(workerId) === undefined && Date.now() - newest > 2 * this.#staleMs) this.#removeFolder(workerId);
  }
}

function mtimeOf(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}
