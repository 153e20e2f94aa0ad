import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isPluginDefinition, pluginMetadataOf } from '@worker-manager/plugin-sdk';
import { fixtureDir } from './sandboxHarness.ts';

const FIXTURES = ['echo', 'hostile-throw', 'hostile-hang', 'hostile-oom', 'hostile-exit', 'hostile-env', 'hostile-fs', 'hostile-spawn', 'hostile-setup', 'hostile-channel', 'hostile-heartbeat'];

describe('sandbox fixture plugins', () => {
  for (const name of FIXTURES) {
    it(`${name}: package.json workerManager block equals pluginMetadataOf(definition)`, async () => {
      const dir = fixtureDir(name);
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; type: string; workerManager: unknown };
      // Importing only defines the plugin; setup (and anything hostile) runs in a sandbox, never here.
      const def: unknown = (await import(join(dir, 'index.ts'))).default;
      assert.ok(isPluginDefinition(def));
      assert.equal(pkg.type, 'module');
      assert.equal(pkg.version, def.version);
      assert.equal(def.id, name);
      assert.deepEqual(pkg.workerManager, pluginMetadataOf(def));
    });
  }
});
