import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { budget } from '../../helpers/waitFor.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const wmPlugin = path.join(repo, 'plugin-sdk', 'src', 'cli', 'wmPlugin.ts');
const tsx = path.join(repo, 'node_modules', '.bin', 'tsx');
const tsc = path.join(repo, 'node_modules', '.bin', 'tsc');
const run = promisify(execFile);
// Each run starts tsx: about a second when idle, tens of seconds on a loaded machine.
const CLI_MS = budget(120_000);
const TEST_MS = budget(600_000);

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command and returns its exit code and output, whatever the code. */
async function outcome(file: string, args: string[], cwd = repo, timeout = CLI_MS): Promise<Outcome> {
  // A `--test` child that inherits NODE_TEST_CONTEXT reports to this runner in its binary protocol instead of TAP.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  try {
    const { stdout, stderr } = await run(file, args, { cwd, timeout, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; killed?: boolean; stdout?: string; stderr?: string };
    assert.equal(e.killed, false, `${path.basename(file)} ${args.join(' ')} did not finish within ${timeout} ms`);
    assert.equal(typeof e.code, 'number', String(error));
    return { code: e.code as number, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const cli = (args: string[], cwd = repo): Promise<Outcome> => outcome(tsx, [wmPlugin, ...args], cwd);

/**
 * `wm-plugin init` into a temporary folder outside the repository, then the links `npm install` would make: the SDK
 * (this repository's, as source) and @types/node.
 */
async function scaffold(t: TestContext, kind: 'provider' | 'credentials', id: string): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'wm-init-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const dir = path.join(root, id);
  const made = await cli(['init', dir, '--kind', kind, '--name', id]);
  assert.equal(made.code, 0, made.stderr);
  await mkdir(path.join(dir, 'node_modules', '@worker-manager'), { recursive: true });
  await mkdir(path.join(dir, 'node_modules', '@types'), { recursive: true });
  await symlink(path.join(repo, 'plugin-sdk'), path.join(dir, 'node_modules', '@worker-manager', 'plugin-sdk'), 'dir');
  await symlink(path.join(repo, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'), 'dir');
  return dir;
}

async function editJson(file: string, edit: (value: Record<string, unknown>) => void): Promise<void> {
  const value = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(value);
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

describe('wm-plugin', () => {
  for (const kind of ['provider', 'credentials'] as const) {
    it(`init --kind ${kind} scaffolds a plugin whose metadata is in sync, that typechecks and passes its own conformance test`, { timeout: TEST_MS }, async (t) => {
      const id = kind === 'provider' ? 'acme' : 'acme-secrets';
      const dir = await scaffold(t, kind, id);
      const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(pkg['name'], `wm-plugin-${id}`);
      assert.deepEqual((pkg['workerManager'] as { id: string; kind: string }).id, id);
      assert.deepEqual((pkg['workerManager'] as { id: string; kind: string }).kind, kind);
      assert.match(await readFile(path.join(dir, 'src', 'index.ts'), 'utf8'), /definePlugin\(\{[\s\S]*configSchema: Config/);
      for (const file of ['README.md', 'tsconfig.json', '.gitignore', 'test/conformance.test.ts']) await readFile(path.join(dir, file));

      const check = await cli(['metadata', '--check'], dir);
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /^unchanged +\.$/m);

      const typecheck = await outcome(tsc, ['-p', 'tsconfig.json'], dir);
      assert.equal(typecheck.code, 0, typecheck.stdout);

      const conformance = await outcome(tsx, ['--test', '--test-reporter=tap', 'test/conformance.test.ts'], dir, budget(400_000));
      assert.equal(conformance.code, 0, conformance.stdout.slice(-4_000));
      assert.match(conformance.stdout, /^# fail 0$/m);
      assert.doesNotMatch(conformance.stdout, /^# pass 0$/m);
    });
  }

  it('init refuses a folder that is not empty, a bad id and a bad kind', { timeout: TEST_MS }, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-init-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'keep.txt'), 'mine');
    const full = await cli(['init', dir, '--kind', 'provider', '--name', 'acme']);
    assert.equal(full.code, 1);
    assert.match(full.stderr, /not empty/);
    assert.equal(await readFile(path.join(dir, 'keep.txt'), 'utf8'), 'mine');
    const badId = await cli(['init', path.join(dir, 'x'), '--kind', 'provider', '--name', 'Acme_1']);
    assert.equal(badId.code, 1);
    assert.match(badId.stderr, /plugin id 'Acme_1'/);
    assert.equal((await cli(['init', path.join(dir, 'y'), '--kind', 'runner', '--name', 'acme'])).code, 2);
  });

  it('metadata --check exits 1 naming a capability package.json declares and definePlugin does not, and the reverse', { timeout: TEST_MS }, async (t) => {
    const dir = await scaffold(t, 'provider', 'acme');
    const pkgFile = path.join(dir, 'package.json');
    const before = await readFile(pkgFile, 'utf8');
    await editJson(pkgFile, (pkg) => {
      (pkg['workerManager'] as { capabilities: Record<string, string> }).capabilities['worker.logs'] = '1.0.0';
    });
    const extraInPackage = await cli(['metadata', '--check', dir]);
    assert.equal(extraInPackage.code, 1);
    assert.match(extraInPackage.stderr, /drifted/);
    assert.match(extraInPackage.stderr, /workerManager\/capabilities\/worker\.logs: package\.json has "1\.0\.0", definePlugin has nothing/);

    await writeFile(pkgFile, before);
    const source = path.join(dir, 'src', 'index.ts');
    const code = await readFile(source, 'utf8');
    await writeFile(source, code.replace("capabilities: { 'worker.lifecycle': '2.0.0' }", "capabilities: { 'worker.lifecycle': '2.0.0', 'worker.exec': '1.0.0' }"));
    const extraInCode = await cli(['metadata', '--check', dir]);
    assert.equal(extraInCode.code, 1);
    assert.match(extraInCode.stderr, /workerManager\/capabilities\/worker\.exec: package\.json has nothing, definePlugin has "1\.0\.0"/);
    assert.equal(await readFile(pkgFile, 'utf8'), before, '--check writes nothing');

    // Without --check the block is rewritten from the code, and the check then passes.
    assert.equal((await cli(['metadata', dir])).code, 0);
    assert.equal((await cli(['metadata', '--check', dir])).code, 0);
  });

  it('metadata --check works on a plugin reached through a symlinked folder', { timeout: TEST_MS }, async (t) => {
    const dir = await scaffold(t, 'provider', 'acme');
    const link = path.join(path.dirname(dir), 'linked-plugin');
    await symlink(dir, link, 'dir');
    assert.equal((await cli(['metadata', '--check', link])).code, 0);
    await editJson(path.join(dir, 'package.json'), (pkg) => {
      (pkg['workerManager'] as { hostApi: string }).hostApi = '^1.0.0';
    });
    const drifted = await cli(['metadata', '--check'], link);
    assert.equal(drifted.code, 1);
    assert.match(drifted.stderr, /workerManager\/hostApi: package\.json has "\^1\.0\.0", definePlugin has "\^2\.0\.0"/);
  });

  // Regression: npm installs a bin as a symlink in node_modules/.bin. The CLI compared import.meta.url (the real path)
  // with process.argv[1] (the link), decided it was not the main module, printed nothing and exited 0 on drift.
  it('run through a symlinked bin, metadata --check still fails on drift (it used to print nothing and exit 0)', { timeout: TEST_MS }, async (t) => {
    const dir = await scaffold(t, 'provider', 'acme');
    await editJson(path.join(dir, 'package.json'), (pkg) => {
      (pkg['workerManager'] as { capabilities: Record<string, string> }).capabilities['worker.logs'] = '1.0.0';
    });
    const bin = path.join(path.dirname(dir), 'bin');
    await mkdir(bin);
    await symlink(wmPlugin, path.join(bin, 'wm-plugin.ts'));
    await symlink(path.join(repo, 'plugin-sdk', 'src', 'cli', 'syncMetadata.ts'), path.join(bin, 'plugin-metadata.ts'));
    const viaWmPlugin = await outcome(tsx, [path.join(bin, 'wm-plugin.ts'), 'metadata', '--check', dir]);
    assert.equal(viaWmPlugin.code, 1, viaWmPlugin.stdout);
    assert.match(viaWmPlugin.stderr, /worker\.logs/);
    const viaScript = await outcome(tsx, [path.join(bin, 'plugin-metadata.ts'), '--check', dir]);
    assert.equal(viaScript.code, 1, viaScript.stdout);
    assert.match(viaScript.stderr, /worker\.logs/);
  });

  it('prints its usage and exits 2 for an unknown command', { timeout: TEST_MS }, async () => {
    const r = await cli(['publish']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /wm-plugin metadata \[--check\]/);
    assert.match(r.stderr, /wm-plugin init <dir> --kind provider\|credentials --name <id>/);
  });
});
