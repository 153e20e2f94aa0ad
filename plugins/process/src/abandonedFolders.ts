import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { claimDir, creatingDir, trashDir, workerPaths, workersDir } from './workerPaths.ts';

/**
 * A create claim that has not changed for this long was left by a thread that died creating the worker: no create
 * takes this long between two steps (the longest wait, for an admission lock a dead thread held, is as long).
 */
export const ABANDONED_CREATE_MS = 10_000;

/** What {@link discardAbandoned} removed, by kind. */
export interface Discarded {
  /** Claims of creates whose thread died before the worker was recorded. */
  claims: string[];
  /** Worker folders without meta.json, which only an older version left (it recorded a worker after making its folder). */
  unrecorded: string[];
  /** Folders found in the trash: removals a killed thread (or an older version) did not finish. */
  trash: number;
}

/** Time since a folder's content last changed (mtime: an entry added, removed or renamed). */
function ageMs(p: string, now: number): number | undefined {
  try {
    return now - statSync(p).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * How long ago a create of `workerId` last did something: the youngest of its claim and the folders built in it (the
 * build folder changes with every step). Undefined when there is no claim.
 */
export function claimAgeMs(stateDir: string, workerId: string, now: number = Date.now()): number | undefined {
  const claim = claimDir(stateDir, workerId);
  const own = ageMs(claim, now);
  if (own === undefined) return undefined;
  let youngest = own;
  for (const entry of safeReaddir(claim)) youngest = Math.min(youngest, ageMs(path.join(claim, entry), now) ?? youngest);
  return youngest;
}

/**
 * Moves `dir` into the trash (a rename: of several threads discarding one folder, one moves it) and removes it there;
 * false when it was gone already. A removal cut short stays in the trash, which {@link emptyTrash} empties: never in
 * `workers/`, where a half-removed folder would look like a worker.
 */
export function discard(stateDir: string, dir: string): boolean {
  const target = path.join(trashDir(stateDir), `${path.basename(dir)}-${randomBytes(4).toString('hex')}`);
  try {
    renameSync(dir, target);
  } catch {
    return false;
  }
  removeQuietly(target);
  return true;
}

/** Removes every folder in the trash; returns how many it found. */
export function emptyTrash(stateDir: string): number {
  const entries = safeReaddir(trashDir(stateDir));
  for (const entry of entries) removeQuietly(path.join(trashDir(stateDir), entry));
  return entries.length;
}

/**
 * Discards what no worker will ever be found in: claims of creates untouched for {@link ABANDONED_CREATE_MS} (their
 * wrapper, if one was spawned, exited unstarted when the dead thread's pipe closed), worker folders without meta.json
 * as old (this version never shows one: a worker folder appears with its meta.json), and whatever is in the trash.
 */
export function discardAbandoned(stateDir: string, now: number = Date.now()): Discarded {
  const out: Discarded = { claims: [], unrecorded: [], trash: emptyTrash(stateDir) };
  for (const id of safeReaddir(creatingDir(stateDir))) {
    const age = claimAgeMs(stateDir, id, now);
    if (age !== undefined && age > ABANDONED_CREATE_MS && discard(stateDir, claimDir(stateDir, id))) out.claims.push(id);
  }
  for (const id of safeReaddir(workersDir(stateDir))) {
    const paths = workerPaths(stateDir, id);
    if (existsSync(paths.meta)) continue;
    const age = ageMs(paths.dir, now);
    if (age !== undefined && age > ABANDONED_CREATE_MS && discard(stateDir, paths.dir)) out.unrecorded.push(id);
  }
  return out;
}

function removeQuietly(p: string): void {
  try {
    rmSync(p, { recursive: true, force: true });
  } catch {
    // another thread removes it at the same time, or the next pass does
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
