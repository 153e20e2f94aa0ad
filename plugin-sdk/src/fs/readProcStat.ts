import { readFileSync } from 'node:fs';

/** The fields of `/proc/<pid>/stat` (Linux) that tell a process's state and identity. */
export interface ProcStat {
  pid: number;
  /** R, S, D, T (stopped), t (traced), Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot (field 22): with the pid, it identifies a process across pid reuse. */
  startTime: string;
}

/** Reads `/proc/<pid>/stat`; undefined when the process does not exist (or there is no `/proc`). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; everything after the last ')' is space-separated.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const startTime = rest[19];
  if (state === undefined || startTime === undefined) return undefined;
  return { pid, state, ppid: Number(rest[1]), pgrp: Number(rest[2]), startTime };
}
