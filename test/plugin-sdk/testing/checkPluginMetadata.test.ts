import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import processPlugin from '@worker-manager/plugin-process';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';

const processDir = fileURLToPath(new URL('../../../plugins/process/', import.meta.url));

describe('checkPluginMetadata', () => {
  it('passes for the process plugin, whose package.json is generated from its definition', async () => {
    await checkPluginMetadata(processDir, processPlugin);
  });

  it('fails, naming the fix, when the workerManager block or the version drifted', async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-meta-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await cp(path.join(processDir, 'package.json'), path.join(dir, 'package.json'));
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { version: string; workerManager: { capabilities: Record<string, string> } };

    pkg.workerManager.capabilities['worker.portForward'] = '1.0.0';
    await writeFile(path.join(dir, 'package.json'), JSON.stringify(pkg));
    await assert.rejects(checkPluginMetadata(dir, processPlugin), (e: Error) => /drifted.*plugin:metadata/s.test(e.message));

    delete pkg.workerManager.capabilities['worker.portForward'];
    pkg.version = '9.9.9';
    await writeFile(path.join(dir, 'package.json'), JSON.stringify(pkg));
    await assert.rejects(checkPluginMetadata(dir, processPlugin), (e: Error) => /version 9\.9\.9/.test(e.message));
  });
});
