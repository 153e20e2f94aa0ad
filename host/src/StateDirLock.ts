import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProcStat } from '@worker-manager/plugin-sdk';
import { hostError } from './errors.ts';

/** Name of the lock file in the state dir. */
export const STATE_DIR_LOCK_FILE = 'host.lock';

/** Where the lock of a state dir is. */
export function stateDirLockPath(stateDir: string): string {
  return path.join(stateDir, STATE_DIR_LOCK_FILE);
}

/**
 * What the lock file holds: who holds the state dir, and what tells that process apart from a later one that got its
 * pid (the process start time and the boot id, where `/proc` has them).
 */
export interface StateDirLockHolder {
  pid: number;
  hostId: string;
  hostname: string;
  startedAt: string;
  /** Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot); null where there is no `/proc`. */
  procStart: string | null;
  /** `/proc/sys/kernel/random/boot_id`; null where there is none. */
  bootId: string | null;
  /** Names this one acquisition: a lock is compared by it, never by pid alone. */
  nonce: string;
}

/** A lock file as read: its holder when it parses, and the identity of this very file either way. */
interface LockFileContent {
  holder: StateDirLockHolder | undefined;
  identity: string;
}

// Locks this process holds, by nonce: a lock file naming our own pid is ours only if we took it (a previous process
// may have had our pid, as pid 1 in a container does at each restart).
const heldHere = new Set<string>();

// Contenders wait for each other only while one of them takes over a stale lock, which takes a few file operations.
const MAX_ATTEMPTS = 50;
const RETRY_DELAY_MS = 20;
// A claim on a claim on ... a stale lock exists only when each taker was killed in the middle of taking it over.
const MAX_CLAIM_DEPTH = 3;

/**
 * An exclusive lock on a host's state dir, so that a second host on the same dir stops before it writes anything
 * there (it would replace the admin token, and interleave journals, the outbox and the audit log).
 *
 * Node has no flock, so the lock is a file created atomically: the holder's record is written to a temporary file and
 * hard-linked to `host.lock` (link fails if the name exists, and a reader never sees a half-written lock). A lock whose process is gone (no such pid, a zombie, a pid reused by a process that started later, or a
 * different boot) is stale and taken over; one written on another machine (hostname) cannot be checked and counts as
 * held. Taking over removes exactly the stale file that was judged: the taker first creates a claim named after that
 * file's nonce (exclusively, the same way), then removes the lock only if it still holds that nonce. Of several hosts
 * that found the same stale lock, one removes it and then all race on the link, which exactly one wins.
 */
export class StateDirLock {
  readonly file: string;
  readonly holder: StateDirLockHolder;
  #released = false;

  private constructor(file: string, holder: StateDirLockHolder) {
    this.file = file;
    this.holder = holder;
  }

  /**
   * Takes the lock of `stateDir` (creating the dir), taking over a stale one. Throws `HOST_ERR_STATE_DIR_LOCKED`,
   * naming the holder's pid, when a live process holds it; nothing in the dir is changed then.
   */
  static async acquire(stateDir: string, options: { hostId: string }): Promise<StateDirLock> {
    await mkdir(stateDir, { recursive: true });
    const file = stateDirLockPath(stateDir);
    const self = ownProcess();
    const holder: StateDirLockHolder = { pid: process.pid, hostId: options.hostId, hostname: os.hostname(), startedAt: new Date().toISOString(), ...self, nonce: randomUUID() };
    let seen: LockFileContent | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // Read first: against a live holder, this host leaves without having written anything at all.
      seen = await readLockFile(file);
      if (seen === undefined) {
        if (await createExclusive(file, holder)) {
          await sweepLeftovers(stateDir, holder.nonce);
          return new StateDirLock(file, holder);
        }
        // Another host linked its lock first: read that one.
        continue;
      }
      if (seen.holder !== undefined && isAlive(seen.holder)) throw lockedError(stateDir, file, seen.holder);
      if (!(await removeStale(file, seen, 0))) await sleep(RETRY_DELAY_MS);
    }
    throw lockedError(stateDir, file, seen?.holder);
  }

  /** Removes the lock file if it is still this lock's; safe to call twice. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      const current = await readLockFile(this.file);
      if (current?.identity === this.holder.nonce) await unlink(this.file).catch(ignoreMissing);
    } finally {
      heldHere.delete(this.holder.nonce);
    }
  }
}

function lockedError(stateDir: string, file: string, holder: StateDirLockHolder | undefined): Error {
  if (holder === undefined) {
    return hostError('HOST_ERR_STATE_DIR_LOCKED', `state dir ${stateDir} is locked (${file}) by a host that is taking it over; retry`, { details: { stateDir, lockFile: file } });
  }
  const where = holder.hostname === os.hostname() ? '' : ` on another machine (${holder.hostname}), whose processes cannot be checked from here: delete ${file} once that host is surely stopped`;
  return hostError(
    'HOST_ERR_STATE_DIR_LOCKED',
    `state dir ${stateDir} is locked by host '${holder.hostId}', pid ${holder.pid}, started ${holder.startedAt}${where}; stop that host or give this one another host.stateDir`,
    { details: { stateDir, lockFile: file, pid: holder.pid, hostId: holder.hostId, hostname: holder.hostname, startedAt: holder.startedAt } },
  );
}

/**
 * Creates `file` holding `record`, only if no file has that name: written to a temporary file first, then hard-linked,
 * so the name appears with its whole content. False when the name exists. While it returns true, `record` is in
 * `heldHere`; the caller removes it once the file is gone.
 */
async function createExclusive(file: string, record: StateDirLockHolder): Promise<boolean> {
  const temp = `${file}.${record.nonce}.${randomUUID().slice(0, 8)}.tmp`;
  // Not fsynced: after a power loss every lock is stale anyway (another boot id), and a damaged one is taken over.
  await writeFile(temp, `${JSON.stringify(record)}\n`, { flag: 'wx', mode: 0o644 });
  // Held from before the file appears, so no taker in this process ever reads it as left by a dead process with our pid.
  heldHere.add(record.nonce);
  let created = false;
  try {
    await link(temp, file);
    created = true;
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOENT: the holder that won meanwhile swept our temporary file away (sweepLeftovers).
    if (code === 'EEXIST' || code === 'ENOENT') return false;
    throw error;
  } finally {
    if (!created) heldHere.delete(record.nonce);
    await unlink(temp).catch(ignoreMissing);
  }
}

/**
 * Removes the stale lock (or claim) `file` that was read as `stale`, unless it changed since: under a claim named
 * after its identity, which only one contender can hold. True when this call settled it (removed, or found it already
 * replaced); false when another contender is on it and the caller should wait a little.
 */
async function removeStale(file: string, stale: LockFileContent, depth: number): Promise<boolean> {
  const claimFile = `${path.join(path.dirname(file), STATE_DIR_LOCK_FILE)}.claim-${safeName(stale.identity)}`;
  const claim: StateDirLockHolder = { pid: process.pid, hostId: 'claim', hostname: os.hostname(), startedAt: new Date().toISOString(), ...ownProcess(), nonce: randomUUID() };
  if (!(await createExclusive(claimFile, claim))) {
    const other = await readLockFile(claimFile);
    if (other === undefined) return true;
    // Another host is taking it over right now.
    if (other.holder !== undefined && isAlive(other.holder)) return false;
    // The claim's own taker died in the middle: clear its claim the same way, then start over.
    if (depth < MAX_CLAIM_DEPTH) return removeStale(claimFile, other, depth + 1);
    return false;
  }
  try {
    // Nobody else can remove or replace `file` while it is the stale one: that takes this claim.
    const current = await readLockFile(file);
    if (current?.identity === stale.identity) await unlink(file).catch(ignoreMissing);
    return true;
  } finally {
    await unlink(claimFile).catch(ignoreMissing);
    heldHere.delete(claim.nonce);
  }
}

/** The lock file's holder (when it parses) and identity; undefined when there is no such file. */
async function readLockFile(file: string): Promise<LockFileContent | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const holder = parseHolder(text);
  // A file that does not parse (damaged, or made by hand) has no holder to ask; its content is its identity.
  return { holder, identity: holder?.nonce ?? `raw-${Buffer.from(text).toString('base64url').slice(0, 64)}-${text.length}` };
}

function parseHolder(text: string): StateDirLockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<StateDirLockHolder> | null;
    if (v === null || typeof v !== 'object' || !Number.isInteger(v.pid) || (v.pid as number) <= 0 || typeof v.nonce !== 'string' || typeof v.hostname !== 'string') return undefined;
    return {
      pid: v.pid as number, nonce: v.nonce, hostname: v.hostname,
      hostId: typeof v.hostId === 'string' ? v.hostId : '?', startedAt: typeof v.startedAt === 'string' ? v.startedAt : '?',
      procStart: typeof v.procStart === 'string' ? v.procStart : null, bootId: typeof v.bootId === 'string' ? v.bootId : null,
    };
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote `holder` still runs; a holder on another machine counts as alive. */
function isAlive(holder: StateDirLockHolder): boolean {
  if (holder.hostname !== os.hostname()) return true;
  if (holder.pid === process.pid) return heldHere.has(holder.nonce);
  const self = ownProcess();
  if (holder.bootId !== null && self.bootId !== null && holder.bootId !== self.bootId) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = readProcStat(holder.pid);
  if (stat === undefined) return true;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return holder.procStart === null || stat.startTime === holder.procStart;
}

/** This process's start time and the boot id, where `/proc` has them. */
function ownProcess(): { procStart: string | null; bootId: string | null } {
  let bootId: string | null = null;
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    // no /proc (not Linux)
  }
  return { procStart: readProcStat(process.pid)?.startTime ?? null, bootId };
}

/** Removes temporary files and claims that takers killed in the middle left behind; only the holder does this. */
async function sweepLeftovers(stateDir: string, own: string): Promise<void> {
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    if (name.startsWith(`${STATE_DIR_LOCK_FILE}.`) && !name.includes(own)) await unlink(path.join(stateDir, name)).catch(ignoreMissing);
  }
}

function safeName(identity: string): string {
  return identity.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 100);
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
