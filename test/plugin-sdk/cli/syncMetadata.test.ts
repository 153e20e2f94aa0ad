import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { syncPluginMetadata } from '../../../plugin-sdk/src/cli/syncMetadata.ts';
import { budget } from '../../helpers/waitFor.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const sdkEntry = path.join(repo, 'plugin-sdk', 'src', 'index.ts');
const run = promisify(execFile);
// Each CLI run starts npx and tsx: about a second when idle, tens of seconds on a loaded machine.
const CLI_MS = budget(120_000);

/** A throwaway plugin package whose entry imports the SDK by absolute path. */
async function fixturePackage(t: TestContext, pkg: Record<string, unknown>, capabilities = "{ 'worker.lifecycle': '2.0.0' }"): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-sync-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'src'));
  await writeFile(
    path.join(dir, 'src', 'index.ts'),
    `import { definePlugin, Type } from ${JSON.stringify(sdkEntry)};
export default definePlugin({ id: 'fixture', version: '2.0.0', kind: 'provider', hostApi: '^2.0.0', description: 'fixture',
  capabilities: ${capabilities}, configSchema: Type.Object({ n: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
  setup: () => { throw new Error('not run'); } });
`,
  );
  await writeFile(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  return dir;
}

const basePkg = { name: 'fixture-plugin', version: '2.0.0', type: 'module', exports: { '.': './src/index.ts' }, license: 'MIT' };

describe('plugin:metadata (syncMetadata)', () => {
  it('writes the workerManager block from the definition: 2-space JSON, trailing newline, other keys in place', async (t) => {
    const dir = await fixturePackage(t, basePkg);
    assert.equal((await syncPluginMetadata(dir, { check: true })).status, 'drifted');
    assert.equal((await syncPluginMetadata(dir)).status, 'written');
    const text = await readFile(path.join(dir, 'package.json'), 'utf8');
    assert.ok(text.endsWith('}\n'));
    assert.match(text, /\n {2}"workerManager": \{\n {4}"id": "fixture",/);
    const pkg = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(pkg), ['name', 'version', 'type', 'exports', 'license', 'workerManager']);
    assert.deepEqual(pkg['workerManager'], {
      id: 'fixture',
      kind: 'provider',
      hostApi: '^2.0.0',
      capabilities: { 'worker.lifecycle': '2.0.0' },
      configSchema: { type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: false },
      description: 'fixture',
    });
    assert.equal((await syncPluginMetadata(dir)).status, 'unchanged', 'a second run changes nothing');
    assert.equal(await readFile(path.join(dir, 'package.json'), 'utf8'), text);
  });

  it('replaces a stale block where it stands and reports a version mismatch without rewriting the version', async (t) => {
    const { license, ...head } = basePkg;
    const dir = await fixturePackage(t, { ...head, version: '1.0.0', workerManager: { id: 'old' }, license });
    const r = await syncPluginMetadata(dir);
    assert.equal(r.status, 'written');
    assert.ok(r.notes.some((n) => n.includes('version')), r.notes.join('; '));
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(pkg['version'], '1.0.0');
    assert.deepEqual(Object.keys(pkg), ['name', 'version', 'type', 'exports', 'workerManager', 'license']);
    assert.equal((await syncPluginMetadata(dir, { check: true })).status, 'drifted', 'still drifted: the version differs');
  });

  it('the CLI exits 1 with --check on drift (writing nothing), 0 when in sync', { timeout: budget(400_000) }, async (t) => {
    const dir = await fixturePackage(t, basePkg);
    const cli = ['tsx', path.join(repo, 'plugin-sdk', 'src', 'cli', 'syncMetadata.ts')];
    const before = await readFile(path.join(dir, 'package.json'), 'utf8');
    await assert.rejects(run('npx', [...cli, '--check', dir], { cwd: repo, timeout: CLI_MS }), (e: { code?: number; killed?: boolean; stderr?: string }) => {
      assert.equal(e.killed, false, `the CLI did not finish within ${CLI_MS} ms`);
      assert.equal(e.code, 1);
      assert.match(e.stderr ?? '', /drifted/);
      return true;
    });
    assert.equal(await readFile(path.join(dir, 'package.json'), 'utf8'), before);
    await run('npx', [...cli, dir], { cwd: repo, timeout: CLI_MS });
    const ok = await run('npx', [...cli, '--check', dir], { cwd: repo, timeout: CLI_MS });
    assert.match(ok.stdout, /unchanged/);
  });
});
