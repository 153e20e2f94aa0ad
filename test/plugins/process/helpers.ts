import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import plugin from '@worker-manager/plugin-process';
import type { WorkerState } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { killProcessWorkers } from '../../helpers/processWorkers.ts';
import { waitFor } from '../../helpers/waitFor.ts';

/**
 * A temp state dir whose worker processes are all killed, and which is removed, when the test ends. node:test runs
 * `after` hooks in registration order, so a harness opened later is still watching (and writing status files) while
 * this runs: the removal retries on ENOTEMPTY instead of failing a test that passed.
 */
export async function tempStateDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-process-test-'));
  t.after(async () => {
    await killProcessWorkers(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  return dir;
}

/** A harness on `stateDir` (a fresh temp one by default), closed when the test ends. */
export async function openHarness(t: TestContext, config: Record<string, unknown> = {}, stateDir?: string): Promise<PluginHarness<'provider'>> {
  const dir = stateDir ?? (await tempStateDir(t));
  const harness = await createPluginHarness(plugin, { config: { pollIntervalMs: 50, ...config }, stateDir: dir });
  t.after(() => harness.close());
  return harness;
}

/** Waits until the worker is in a final state and returns it. */
export function finalState(h: PluginHarness<'provider'>, workerId: string, timeoutMs?: number): Promise<WorkerState> {
  return waitFor(async () => {
    const s = await h.proxy.getWorkerStatus({ workerId });
    return s.phase === 'Terminated' || s.phase === 'Failed' ? s : undefined;
  }, `${workerId} to end`, timeoutMs);
}

/** All log text of a worker. */
export async function logText(h: PluginHarness<'provider'>, workerId: string): Promise<string> {
  let text = '';
  for await (const chunk of await h.proxy.getLogs({ workerId })) text += chunk.data;
  return text;
}

/** True when a process with this pid exists and is not a zombie. */
export async function processRuns(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Every file under a folder, with its content. */
export async function filesUnder(dir: string): Promise<Array<{ file: string; content: Buffer }>> {
  const out: Array<{ file: string; content: Buffer }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    try {
      out.push({ file, content: await readFile(file) });
    } catch {
      // removed while scanning
    }
  }
  return out;
}

export { waitFor };
