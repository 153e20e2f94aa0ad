import assert from 'node:assert/strict';
import { readFile, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { describe, it } from 'node:test';
import { buildProcessBundle } from '../../../host/src/sandbox/process/processBundle.ts';
import { fixtureDir } from './sandboxHarness.ts';

const repoRoot = await realpath(new URL('../../../', import.meta.url).pathname);

/** The files esbuild read to make a cached bundle (its manifest): [path, size, mtime]. */
async function inputsOf(dir: string): Promise<string[]> {
  return (JSON.parse(await readFile(join(dir, 'inputs.json'), 'utf8')) as Array<[string, number, number]>).map(([file]) => file);
}

describe('the restricted bundle cache', () => {
  it('serves this checkout only bundles built from its own code (the cache is per user, shared by every checkout)', async () => {
    const bundle = await buildProcessBundle({ entry: join(fixtureDir('echo'), 'index.ts'), packageDir: fixtureDir('echo'), label: 'bundle-test' });
    try {
      const foreign = (await inputsOf(bundle.dir)).filter((file) => !file.startsWith(repoRoot + sep));
      assert.deepEqual(foreign, [], 'the cached sandbox was built from another checkout');
    } finally {
      await bundle.dispose();
    }
  });
});
