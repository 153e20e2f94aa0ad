import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writeFileAtomic, writeFileAtomicSync } from '@worker-manager/plugin-sdk';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('writeFileAtomic', () => {
  for (const [name, write] of [
    ['async', (f: string, c: string, mode?: number) => writeFileAtomic(f, c, mode === undefined ? {} : { mode })],
    ['sync', async (f: string, c: string, mode?: number) => writeFileAtomicSync(f, c, mode === undefined ? {} : { mode })],
  ] as const) {
    it(`${name}: replaces the content, with 0600 unless told otherwise, and leaves no temporary file`, async (t) => {
      const dir = await tempDir(t);
      const file = path.join(dir, 'state.json');
      await writeFile(file, 'old');
      await write(file, 'new content');
      assert.equal(await readFile(file, 'utf8'), 'new content');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      await write(file, 'readable', 0o444);
      assert.equal((await stat(file)).mode & 0o777, 0o444);
      assert.deepEqual(await readdir(dir), ['state.json']);
    });

    it(`${name}: a failed write leaves the old file as it was and no temporary file`, async (t) => {
      const dir = await tempDir(t);
      const file = path.join(dir, 'state.json');
      await writeFile(file, 'old');
      // A folder in the way of the rename: the temp file is written, the rename fails.
      const blocked = path.join(dir, 'blocked');
      await mkdir(path.join(blocked, 'inner'), { recursive: true });
      await assert.rejects(write(blocked, 'x'));
      assert.equal(await readFile(file, 'utf8'), 'old');
      assert.deepEqual((await readdir(dir)).sort(), ['blocked', 'state.json']);
    });
  }
});
