import type { RuntimeSpec } from '../contracts/runtimeSpec.ts';
import type { SecretMount } from '../contracts/secretRef.ts';
import { WorkerManagerError } from './WorkerManagerError.ts';

/** Longest single argument or environment string execve(2) takes, its terminating NUL included (Linux MAX_ARG_STRLEN). */
export const MAX_ARG_STRLEN = 131_072;

const POINTER_BYTES = 8;

/**
 * What execve(2) takes in all arguments and environment strings together, with a pointer to each, for a process whose
 * stack limit is `stackLimitBytes`: a quarter of it, at most 6 MiB, at least 128 KiB (Linux), so 2 MiB with the usual
 * 8 MiB stack (`getconf ARG_MAX`). `Infinity` (unlimited stack) gives 6 MiB.
 */
export function execArgumentLimit(stackLimitBytes: number = 8 * 1024 * 1024): number {
  return Math.max(128 * 1024, Math.min(6 * 1024 * 1024, Math.floor(stackLimitBytes / 4)));
}

/** A string a process is started with (an argument, or `NAME=value`), and the request field it came from. */
export interface ExecString {
  /**
   * JSON pointer of the field it came from (`/spec/args/2`, `/spec/env/NAME`, `/secrets/0`); none for what the
   * provider adds itself, which counts towards the total but is never named.
   */
  path?: string;
  text: string;
}

/**
 * What a worker's process is started with, each string with its field: `spec.command` and `spec.args` as the
 * arguments, and every variable of `env` (the environment the provider built) as `NAME=value`, attributed to the env
 * secret mount that set it (`/secrets/<i>`), else to `spec.env`, else to nobody (the provider's own).
 */
export function specExecStrings(spec: RuntimeSpec, env: Readonly<Record<string, string>>, secrets: readonly SecretMount[]): ExecString[] {
  const strings: ExecString[] = [
    ...(spec.command ?? []).map((text, i) => ({ path: `/spec/command/${i}`, text })),
    ...(spec.args ?? []).map((text, i) => ({ path: `/spec/args/${i}`, text })),
  ];
  for (const [name, value] of Object.entries(env)) {
    const secret = secrets.findLastIndex((s) => s.strategy === 'env' && s.envName === name);
    const path = secret >= 0 ? `/secrets/${secret}` : spec.env !== undefined && Object.hasOwn(spec.env, name) ? `/spec/env/${name}` : undefined;
    strings.push(path === undefined ? { text: `${name}=${value}` } : { path, text: `${name}=${value}` });
  }
  return strings;
}

/** The list a field belongs to: `/spec/args` for `/spec/args/2`. */
const listOf = (pointer: string): string => pointer.slice(0, pointer.lastIndexOf('/')) || pointer;

/**
 * The `WM_ERR_VALIDATION` for a command line and environment the system refuses to start a process with (E2BIG),
 * naming the field (`details.instancePath`): the first string over {@link MAX_ARG_STRLEN}, else, when all of them
 * together come to more than `limitBytes` (see {@link execArgumentLimit}), the list holding the most bytes
 * (`/spec/args`, `/spec/env`, ...). Undefined when neither is the case. A provider whose spawn already failed with
 * E2BIG passes `limitBytes: 0`, so that a field is named whatever the limit was. Never quotes a value: only sizes.
 */
export function argumentListTooLong(strings: readonly ExecString[], limitBytes: number): WorkerManagerError | undefined {
  let total = 0;
  const byList = new Map<string, number>();
  for (const s of strings) {
    const bytes = Buffer.byteLength(s.text) + 1;
    total += bytes + POINTER_BYTES;
    if (s.path === undefined) continue;
    if (bytes > MAX_ARG_STRLEN) {
      return new WorkerManagerError('WM_ERR_VALIDATION', `${s.path}: ${bytes - 1} bytes, more than one argument or environment string can have (${MAX_ARG_STRLEN - 1}; E2BIG)`, {
        details: { instancePath: s.path, errorCode: 'E2BIG', bytes: bytes - 1, limitBytes: MAX_ARG_STRLEN - 1 },
      });
    }
    byList.set(listOf(s.path), (byList.get(listOf(s.path)) ?? 0) + bytes);
  }
  if (total <= limitBytes) return undefined;
  const largest = [...byList].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '/spec';
  const limit = limitBytes > 0 ? `, more than the ${limitBytes} the system passes to a new process` : ', more than the system passes to a new process';
  return new WorkerManagerError('WM_ERR_VALIDATION', `${largest}: the command line and environment come to ${total} bytes${limit} (E2BIG)`, {
    details: { instancePath: largest, errorCode: 'E2BIG', bytes: total, ...(limitBytes > 0 ? { limitBytes } : {}) },
  });
}
