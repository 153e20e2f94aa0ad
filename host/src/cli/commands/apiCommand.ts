import { toWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ApiClient } from '../client/ApiClient.ts';
import { resolveConnection } from '../client/cliConfig.ts';
import { EXIT, exitCodeFor } from '../client/exitCodes.ts';

/** The options every command that calls the API takes. */
export interface ApiOptions {
  url?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

/** Adds `--url`, `--token`, `--token-file` and `--json` to a command that calls the API. */
export function withApiOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'API base URL (env WM_URL, cli.yaml url; default http://127.0.0.1:8080)'))
    .addOption(new Option('--token <token>', 'bearer token (env WM_TOKEN; prefer --token-file: a flag shows in ps)'))
    .addOption(new Option('--token-file <file>', 'file holding the bearer token (env WM_TOKEN_FILE, cli.yaml tokenFile)'))
    .option('--json', 'print the API\'s JSON instead of a table');
}

/** An API client for the resolved connection (flags, then env, then cli.yaml). */
export async function clientFor(opts: ApiOptions, timeoutMs?: number): Promise<ApiClient> {
  const connection = await resolveConnection(opts, process.env, (line) => process.stderr.write(`wm: ${line}\n`));
  return new ApiClient(connection, timeoutMs === undefined ? {} : { timeoutMs });
}

/** Writes a line (or lines) to stdout. */
export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Writes a line to stderr, prefixed like every message of wm. */
export function note(text: string): void {
  process.stderr.write(`wm: ${text}\n`);
}

/** The API's JSON, as it came: indented, one document. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** Prints a coded error as `wm: [CODE] message` (and each validation issue) and returns its exit code. */
export function reportCliError(error: unknown): number {
  const wm = toWorkerManagerError(error);
  const correlationId = wm.details?.['correlationId'];
  const quote = typeof correlationId === 'string' && !wm.message.includes(correlationId) && wm.category !== 'ClientValidation' ? ` (correlation id ${correlationId})` : '';
  process.stderr.write(`wm: [${wm.code}] ${wm.message}${quote}\n`);
  const issues = wm.details?.['issues'];
  if (Array.isArray(issues) && issues.length > 1) {
    for (const issue of issues as Array<{ path?: unknown; message?: unknown }>) process.stderr.write(`  ${String(issue.path)}: ${String(issue.message)}\n`);
  }
  return exitCodeFor(wm);
}

/**
 * Wraps a command action: its result (a number) is the exit code, a throw is reported and mapped through the exit
 * code table. Commander's own usage errors never get here (they exit 2 in main.ts).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = (await fn(...args)) ?? EXIT.ok;
    } catch (error) {
      process.exitCode = reportCliError(error);
    }
  };
}

/** A usage error found after parsing (a bad `K=V`, a spec file that does not validate): exit 2. */
export function usageError(message: string, details?: Record<string, unknown>): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_VALIDATION', message, details === undefined ? {} : { details });
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `K=V` pairs as a map; a pair without `=` is a usage error naming the option. */
export function keyValues(pairs: readonly string[] | undefined, option: string): Record<string, string> | undefined {
  if (pairs === undefined || pairs.length === 0) return undefined;
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw usageError(`${option} takes KEY=VALUE, got '${pair}'`, { path: option });
    map[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return map;
}

/** A non-negative integer option, checked when parsed (commander turns the throw into a usage error). */
export function integer(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}
