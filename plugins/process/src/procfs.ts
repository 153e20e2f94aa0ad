import { readdirSync, readFileSync } from 'node:fs';
import { readProcStat } from '@worker-manager/plugin-sdk';

// One reader of /proc/<pid>/stat for the plugin and the host (whose state dir lock tells live holders from dead ones).
export { readProcStat, type ProcStat } from '@worker-manager/plugin-sdk';

/** True while the process that was started at `startTime` still runs (a zombie has finished). */
export function isProcessAlive(pid: number, startTime: string): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** Live members of a process group. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid);
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') out.push(pid);
  }
  return out;
}

/** The environment a process was started with, from `/proc/<pid>/environ`. */
export function readEnviron(pid: number): Record<string, string> | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined;
  }
  const env: Record<string, string> = {};
  for (const entry of raw.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** True when the process has a handler installed for `signal` (SigCgt in `/proc/<pid>/status`). */
export function catchesSignal(pid: number, signal: number): boolean {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const hex = /^SigCgt:\s*([0-9a-f]+)$/m.exec(text)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(signal - 1)) & 1n) === 1n;
}

/** The command line of a process (NUL-separated argv), or undefined when it does not exist. */
export function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return undefined;
  }
}

/** Direct children of a process (`/proc/<pid>/task/<pid>/children`, or a scan of ppids where that is missing). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter((s) => s !== '').map(Number);
  } catch {
    const out: number[] = [];
    for (const name of readdirSync('/proc')) {
      const child = Number(name);
      if (Number.isInteger(child) && child > 0 && readProcStat(child)?.ppid === pid) out.push(child);
    }
    return out;
  }
}

/** True when this system has a procfs this plugin can use (Linux). */
export function hasProcfs(): boolean {
  return readProcStat(process.pid) !== undefined;
}
