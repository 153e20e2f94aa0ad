import { closeSync, openSync, readFileSync, readSync, fstatSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import { readJson, writeJsonAtomic } from './jsonFile.ts';
import { readProcStat, type ProcStat } from './procfs.ts';
import type { WorkerMeta } from './WorkerMeta.ts';
import type { WorkerPaths } from './workerPaths.ts';

/** Why a stop was asked for; decides how the exit is reported. */
export type StopReason = 'requested' | 'deadline' | 'restart';

/** `terminating.json`. */
export interface TerminatingMarker {
  reason: StopReason;
  at: number;
}

// A restart that has not finished after this long was interrupted (its thread died); stop hiding the exit.
const RESTART_STALE_MS = 30_000;

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, num]) => [num, name]));

/**
 * Patterns programs print when an allocation fails under RLIMIT_AS (glibc, mawk/gawk, Python, V8, C++ runtimes,
 * shells). Under an address-space limit nothing kills the process, so this is the only trace of running out.
 */
const OUT_OF_MEMORY = /out of memory|cannot allocate memory|memory exhausted|bad_alloc|MemoryError|allocation failed|ENOMEM/i;

/** The command's exit status as the wrapper recorded it; undefined until then. */
export function readExitStatus(paths: WorkerPaths): number | undefined {
  let text: string;
  try {
    text = readFileSync(paths.exit, 'utf8');
  } catch {
    return undefined;
  }
  return /^\d{1,3}\n$/.test(text) ? Number(text.trim()) : undefined;
}

/** The last bytes of a file, as text. */
function tailOf(file: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(bytes, size);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Maps an exit status to the final state (see README: exit codes, signals, memory limit). */
export function finalStateOf(status: number, marker: TerminatingMarker | undefined, meta: WorkerMeta, paths: WorkerPaths): WorkerState {
  if (marker?.reason === 'deadline') return { phase: 'Failed', reason: 'DeadlineExceeded', exitCode: status };
  if (marker !== undefined) return { phase: 'Terminated', exitCode: status };
  if (status === 0) return { phase: 'Terminated', exitCode: 0 };
  if (meta.memoryKiB !== undefined && OUT_OF_MEMORY.test(tailOf(paths.stderr, 4_096))) return { phase: 'Failed', reason: 'OutOfMemory', exitCode: status };
  // A shell reports death by signal N as 128+N; a command exiting with such a code on its own is read the same way.
  const signal = status > 128 ? signalNames.get(status - 128) : undefined;
  if (signal !== undefined) return { phase: 'Failed', reason: `Signal${signal}`, exitCode: status };
  return { phase: 'Failed', reason: `ExitCode${status}`, exitCode: status };
}

/** Reads the stop marker, ignoring a restart marker left by an interrupted restart. */
export function readMarker(paths: WorkerPaths): TerminatingMarker | undefined {
  const marker = readJson<TerminatingMarker>(paths.terminating);
  if (marker?.reason === 'restart' && Date.now() - marker.at > RESTART_STALE_MS) return undefined;
  return marker;
}

/** The `/proc` stat of the wrapper shell of this generation while it runs (a zombie has finished). */
function liveWrapper(meta: WorkerMeta): ProcStat | undefined {
  const stat = readProcStat(meta.pid);
  return stat !== undefined && stat.startTime === meta.startTime && stat.state !== 'Z' && stat.state !== 'X' ? stat : undefined;
}

/** True when the wrapper shell of this generation is still running (a zombie has finished). */
export function wrapperAlive(meta: WorkerMeta): boolean {
  return liveWrapper(meta) !== undefined;
}

const runningOrPaused = (stat: ProcStat): WorkerState => (stat.state === 'T' || stat.state === 't' ? { phase: 'Paused' } : { phase: 'Running' });

/**
 * The state of a worker whose wrapper of this generation still runs (Running, Paused or Terminating), or undefined
 * once it does not: what a watcher polls. It reads no cached final state and writes nothing, so it can be asked with
 * a meta that a restart has since replaced (that generation's wrapper is gone, and the answer is undefined).
 */
export function observeLive(paths: WorkerPaths, meta: WorkerMeta): WorkerState | undefined {
  const stat = liveWrapper(meta);
  if (stat === undefined) return undefined;
  return readMarker(paths) !== undefined ? { phase: 'Terminating' } : runningOrPaused(stat);
}

/**
 * Derives a worker's state from its folder and `/proc` alone, so every thread gives the same answer:
 * an exit record means a final state; a live wrapper means Running, Paused (stopped, `T`) or Terminating;
 * a wrapper gone without an exit record means it was killed from outside (`Failed: ProcessLost`).
 */
export function observeWorker(paths: WorkerPaths, meta: WorkerMeta): WorkerState {
  const cached = readJson<WorkerState & { generation?: number }>(paths.final);
  if (cached !== undefined && cached.generation === meta.generation) {
    const { generation: _generation, ...state } = cached;
    return state as WorkerState;
  }
  const marker = readMarker(paths);
  if (marker?.reason === 'restart') return { phase: 'Terminating' };
  const stat = liveWrapper(meta);
  if (stat !== undefined) return marker !== undefined ? { phase: 'Terminating' } : runningOrPaused(stat);
  // The wrapper writes the exit record just before it exits; read it after seeing it gone.
  const status = readExitStatus(paths);
  let state: WorkerState;
  if (status !== undefined) state = finalStateOf(status, marker, meta, paths);
  else if (marker !== undefined && marker.reason !== 'deadline') state = { phase: 'Terminated' };
  else if (marker !== undefined) state = { phase: 'Failed', reason: 'DeadlineExceeded' };
  else state = { phase: 'Failed', reason: 'ProcessLost' };
  try {
    writeJsonAtomic(paths.final, { ...state, generation: meta.generation });
  } catch {
    // The folder may be going away (garbage collection); the state is still right.
  }
  return state;
}

/** When the worker finished (for retention), or undefined while it has not. */
export function finishedAt(paths: WorkerPaths): number | undefined {
  try {
    return statSync(paths.final).mtimeMs;
  } catch {
    return undefined;
  }
}
