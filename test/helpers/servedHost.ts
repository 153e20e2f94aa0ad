import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { repoRoot } from './startTestHost.ts';
import { waitFor, within } from './waitFor.ts';

const bin = path.join(repoRoot, 'host', 'bin', 'wm.js');

/** A cold `wm serve` compiles the host and a plugin thread through tsx: seconds when idle, far more under load. */
export const HOST_START_MS = 120_000;

/** A real `wm serve` process, started as a user starts it. */
export interface ServedHost {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Resolves once the process has exited and its output is all read. */
  closed: Promise<void>;
}

/** What a client needs to call a started host's API. */
export interface HostApi {
  url: string;
  headers: { authorization: string };
}

/**
 * Starts `node host/bin/wm.js serve --config <file>`. The process is SIGKILLed when the test ends, whatever happened;
 * what it leaves behind (workers outlive their host by design) is the caller's to clean up.
 */
export function serveHost(t: TestContext, config: string): ServedHost {
  const child = spawn(process.execPath, [bin, 'serve', '--config', config], { cwd: repoRoot, env: { ...process.env, WM_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => out, closed };
}

/**
 * Waits for the start line `wm serve` prints once `Host.start()` resolved (adoption of existing workers included),
 * then reads the API's address from the host's `api listening` log line (the config must log at info or below and
 * may listen on port 0) and the local admin token from `<stateDir>/admin.token`.
 */
export async function hostStarted(s: ServedHost, hostId: string, stateDir: string): Promise<HostApi> {
  // The log goes to stderr through an asynchronous destination: the start line on stdout can come first.
  await waitFor(
    () => (s.output().includes(`host '${hostId}' started`) && apiUrlOf(s.output()) !== undefined) || s.child.exitCode !== null,
    () => `host '${hostId}' to start and log 'api listening' (api.enabled and logLevel info are needed); output:\n${s.output()}`,
    HOST_START_MS,
  );
  assert.equal(s.child.exitCode, null, `the host exited early:\n${s.output()}`);
  const url = apiUrlOf(s.output()) as string;
  const token = (await readFile(path.join(stateDir, 'admin.token'), 'utf8')).trim();
  return { url, headers: { authorization: `Bearer ${token}` } };
}

/** SIGKILLs the host and waits until it is reaped. */
export async function killHost(s: ServedHost): Promise<void> {
  s.child.kill('SIGKILL');
  await within(s.closed, () => `the SIGKILLed host to be reaped; output:\n${s.output()}`);
}

/** The URL of the last `api listening` line of a host's JSON log. */
function apiUrlOf(output: string): string | undefined {
  let url: string | undefined;
  for (const line of output.split('\n')) {
    if (!line.includes('"api listening"')) continue;
    try {
      const parsed = JSON.parse(line) as { url?: unknown };
      if (typeof parsed.url === 'string') url = parsed.url;
    } catch {
      // a line cut by the process's death, or not JSON
    }
  }
  return url;
}
