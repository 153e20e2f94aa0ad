import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-simple';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';

/** scrypt cost small enough for tests; the shipped default (2^15) is what production uses. */
export const FAST_SCRYPT = { cost: 1024, blockSize: 8, parallelization: 1 };

/** A temporary folder removed after the test. */
export async function tempDir(t: TestContext, prefix = 'wm-creds-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a key file and returns its path. */
export async function keyFile(dir: string, name: string, key: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return file;
}

/** A harness over `stateDir` reading its key from `key` (a key file path), closed after the test. */
export async function harness(t: TestContext, stateDir: string, key: string, config: Record<string, unknown> = {}): Promise<PluginHarness<'credentials'>> {
  const h = await createPluginHarness(plugin, { stateDir, config: { keyFile: key, scrypt: FAST_SCRYPT, ...config } });
  t.after(() => h.close());
  return h;
}

/** sha256 of a file, to prove it was not rewritten. */
export async function fileHash(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** Calls `fn` and returns the error it rejects with; fails when it resolves. */
export async function rejection(fn: () => Promise<unknown>): Promise<{ code: string; message: string; details?: Record<string, unknown> }> {
  try {
    await fn();
  } catch (error) {
    return error as { code: string; message: string; details?: Record<string, unknown> };
  }
  throw new Error('expected a rejection');
}
