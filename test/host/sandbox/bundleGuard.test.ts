import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { build, type BuildFailure, type Plugin } from 'esbuild';
import { BOUNDARY_REFUSAL_PREFIX, isBoundaryRefusal, packageBoundaryPlugin } from '../../../host/src/sandbox/bundleGuard.ts';

// One identifier, so esbuild's JSON error ("Unexpected ...") would quote all of it.
const SECRET = 'wmAdminToken4f1c9a';

/** A temp folder holding `pkg/` (the plugin package) and `outside/secret.txt`, beside it but not in it. */
async function workspace(t: TestContext, files: Record<string, string>): Promise<{ base: string; pkg: string }> {
  const base = await realpath(await mkdtemp(join(tmpdir(), 'wm-bundle-guard-')));
  t.after(() => rm(base, { recursive: true, force: true }));
  const pkg = join(base, 'pkg');
  const all = { 'outside/secret.txt': `${SECRET}\n`, 'outside/outside.js': `export const leaked = '${SECRET}';\n`, 'pkg/package.json': '{"name":"p","type":"module"}', ...files };
  for (const [path, text] of Object.entries(all)) {
    await mkdir(dirname(join(base, path)), { recursive: true });
    await writeFile(join(base, path), text);
  }
  return { base, pkg };
}

async function bundle(entry: string | Record<string, string>, plugins: Plugin[]): Promise<string> {
  const result = await build({
    entryPoints: typeof entry === 'string' ? { plugin: entry } : entry,
    bundle: true,
    write: false,
    outdir: '/virtual-out',
    format: 'esm',
    platform: 'node',
    logLevel: 'silent',
    plugins,
  });
  return result.outputFiles.map((f) => f.text).join('\n');
}

const guard = (pkg: string, allowedRoots: string[] = [], hostEntries?: string[]): Plugin[] => [packageBoundaryPlugin({ packageDir: pkg, allowedRoots, ...(hostEntries ? { hostEntries } : {}) })];

/** Asserts the build is refused by the guard, with every fragment in the refusal text, and returns that text. */
async function refused(run: Promise<unknown>, ...fragments: string[]): Promise<string> {
  const error = await run.then(() => assert.fail('the build was expected to be refused'), (e: unknown) => e);
  assert.ok(isBoundaryRefusal(error), `not a boundary refusal: ${String(error)}`);
  const text = (error as BuildFailure).errors.map((m) => m.text).join('\n');
  assert.ok(text.startsWith(BOUNDARY_REFUSAL_PREFIX), text);
  for (const fragment of fragments) assert.ok(text.includes(fragment), `refusal lacks ${JSON.stringify(fragment)}: ${text}`);
  assert.ok(!text.includes(SECRET), 'the refusal quotes the secret');
  return text;
}

describe('packageBoundaryPlugin', () => {
  it('bundles an index.ts that imports a local file', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import { greet } from './lib.ts';\nexport default greet('local-marker');\n",
      'pkg/lib.ts': 'export const greet = (s: string): string => `hi ${s}`;\n',
    });
    assert.match(await bundle(join(pkg, 'index.ts'), guard(pkg)), /local-marker/);
  });

  it('bundles a JSON import inside the package, with or without { type: "json" }', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import a from './a.json' with { type: 'json' };\nimport b from './b.json';\nexport default [a, b];\n",
      'pkg/a.json': '{"marker":"json-a"}',
      'pkg/b.json': '{"marker":"json-b"}',
    });
    const out = await bundle(join(pkg, 'index.ts'), guard(pkg));
    assert.match(out, /json-a/);
    assert.match(out, /json-b/);
  });

  it('bundles a dependency from the package\'s own node_modules', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import { dep } from 'dep';\nexport default dep;\n",
      'pkg/node_modules/dep/package.json': '{"name":"dep","main":"main.cjs"}',
      'pkg/node_modules/dep/main.cjs': "exports.dep = 'dep-marker';\n",
    });
    assert.match(await bundle(join(pkg, 'index.ts'), guard(pkg)), /dep-marker/);
  });

  it('lets node: built-ins and bare built-in names through, unbundled', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import { readFileSync } from 'node:fs';\nimport { join } from 'path';\nexport default [readFileSync, join];\n",
    });
    const out = await bundle(join(pkg, 'index.ts'), guard(pkg));
    assert.match(out, /from "node:fs"/);
    assert.match(out, /from "path"/);
  });

  it('refuses import x from "/etc/hostname" with { type: "text" } (the attack: esbuild inlines it)', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import x from '/etc/hostname' with { type: 'text' };\nexport default x;\n",
    });
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import '/etc/hostname'", 'in index.ts', '"type":"text"');
  });

  it('refuses a text, file or loader attribute even on a file inside the package', async (t) => {
    for (const attributes of ["{ type: 'text' }", "{ type: 'file' }", "{ type: 'binary' }", "{ loader: 'base64' }", "{ type: 'json', loader: 'text' }"]) {
      const { pkg } = await workspace(t, {
        'pkg/index.ts': `import x from './data.js' with ${attributes};\nexport default x;\n`,
        'pkg/data.js': 'export default 1;\n',
      });
      await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import './data.js'", 'in index.ts', 'only { type: \'json\' } is allowed');
    }
  });

  it('refuses ../outside.js, and names the file it resolves to', async (t) => {
    const { base, pkg } = await workspace(t, {
      'pkg/index.ts': "import { leaked } from '../outside/outside.js';\nexport default leaked;\n",
    });
    // Without the guard the file outside is bundled: the test below would pass for no reason if it were not.
    assert.match(await bundle(join(pkg, 'index.ts'), []), new RegExp(SECRET));
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import '../outside/outside.js'", 'in index.ts', join(base, 'outside/outside.js'), 'outside the plugin package');
  });

  it('refuses lib.js when it is a symlink to a file outside the package', async (t) => {
    const { base, pkg } = await workspace(t, {
      'pkg/index.ts': "import { leaked } from './lib.js';\nexport default leaked;\n",
    });
    await symlink(join(base, 'outside/outside.js'), join(pkg, 'lib.js'));
    assert.match(await bundle(join(pkg, 'index.ts'), []), new RegExp(SECRET));
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import './lib.js'", `resolves to ${join(base, 'outside/outside.js')}`, 'outside the plugin package');
  });

  it('refuses a non-code file inside the package (esbuild would inline a .txt as text)', async (t) => {
    const { pkg } = await workspace(t, {
      'pkg/index.ts': "import notes from './notes.txt';\nexport default notes;\n",
      'pkg/notes.txt': 'notes-marker',
    });
    assert.match(await bundle(join(pkg, 'index.ts'), []), /notes-marker/);
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import './notes.txt'", "extension '.txt' is not code");
  });

  it('refuses a fifo named like code (reading it would hang the host\'s build)', { timeout: 10_000 }, async (t) => {
    const { pkg } = await workspace(t, { 'pkg/index.ts': "import x from './pipe.js';\nexport default x;\n" });
    const fifo = join(pkg, 'pipe.js');
    execFileSync('mkfifo', [fifo]);
    // Should the check be gone, esbuild waits for a writer forever, and so would this test file once this test timed out.
    t.after(() => open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).then((fh) => fh.close(), () => undefined));
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), "import './pipe.js'", 'not a regular file');
  });

  it('refuses a data: import, which is no file on disk', async (t) => {
    const { pkg } = await workspace(t, { 'pkg/index.ts': "import x from 'data:text/javascript,export default 1';\nexport default x;\n" });
    await refused(bundle(join(pkg, 'index.ts'), guard(pkg)), 'no file on disk');
  });

  it('refuses an entry point outside the package', async (t) => {
    const { base, pkg } = await workspace(t, {});
    await refused(bundle(join(base, 'outside/outside.js'), guard(pkg)), 'the build entry points', 'outside the plugin package');
  });

  it('accepts a dependency in an allowed root, and refuses it when the root is not allowed', async (t) => {
    const { base, pkg } = await workspace(t, {
      'pkg/index.ts': "import { shared } from 'shared';\nexport default shared;\n",
      'deps/node_modules/shared/package.json': '{"name":"shared","main":"index.js"}',
      'deps/node_modules/shared/index.js': "export const shared = 'shared-marker';\n",
    });
    const nodePaths = [join(base, 'deps/node_modules')];
    const run = (plugins: Plugin[]): Promise<string> => build({
      entryPoints: [join(pkg, 'index.ts')], bundle: true, write: false, format: 'esm', platform: 'node', logLevel: 'silent', nodePaths, plugins,
    }).then((r) => r.outputFiles.map((f) => f.text).join('\n'));
    assert.match(await run(guard(pkg, [join(base, 'deps/node_modules')])), /shared-marker/);
    await refused(run(guard(pkg)), "import 'shared'", 'outside the plugin package');
  });

  it('checks imports made by files in an allowed root like the plugin\'s own', async (t) => {
    const { base, pkg } = await workspace(t, {
      'pkg/index.ts': "import { shared } from 'shared';\nexport default shared;\n",
      'deps/node_modules/shared/package.json': '{"name":"shared","main":"index.js"}',
      'deps/node_modules/shared/index.js': "export { default as shared } from '../../../outside/secret.txt' with { type: 'text' };\n",
    });
    const plugins = guard(pkg, [join(base, 'deps/node_modules')]);
    const run = build({ entryPoints: [join(pkg, 'index.ts')], bundle: true, write: false, platform: 'node', logLevel: 'silent', nodePaths: [join(base, 'deps/node_modules')], plugins });
    await refused(run, "import '../../../outside/secret.txt'", join(base, 'deps/node_modules/shared/index.js'));
  });

  it('does not check the host entry\'s own imports, but refuses the plugin the same host file', async (t) => {
    const { base, pkg } = await workspace(t, {
      'host/threadMain.ts': "import { hostThing } from './hostLib.ts';\nexport default hostThing;\n",
      'host/hostLib.ts': "export const hostThing = 'host-marker';\n",
      'pkg/index.ts': "export default 'plugin-marker';\n",
      'pkg/sneaky.ts': "import { hostThing } from '../host/hostLib.ts';\nexport default hostThing;\n",
    });
    const hostEntry = join(base, 'host/threadMain.ts');
    const out = await bundle({ thread: hostEntry, plugin: join(pkg, 'index.ts') }, guard(pkg, [], [hostEntry]));
    assert.match(out, /host-marker/);
    assert.match(out, /plugin-marker/);
    await refused(bundle({ thread: hostEntry, plugin: join(pkg, 'sneaky.ts') }, guard(pkg, [], [hostEntry])), "import '../host/hostLib.ts'", 'in sneaky.ts');
  });

  it('keeps esbuild from reading a tsconfig.json whose extends names a secret file (esbuild quotes it on error)', async (t) => {
    const { base, pkg } = await workspace(t, { 'pkg/index.ts': "export default 'ok';\n" });
    await writeFile(join(pkg, 'tsconfig.json'), JSON.stringify({ extends: join(base, 'outside/secret.txt') }));
    const unguarded = await bundle(join(pkg, 'index.ts'), []).then(() => '', (e: unknown) => String(e));
    assert.match(unguarded, new RegExp(SECRET), 'esbuild no longer quotes the file: this test proves nothing');
    assert.match(await bundle(join(pkg, 'index.ts'), guard(pkg)), /"ok"/);
  });

  it('leaves an ordinary resolution failure to esbuild: not a boundary refusal', async (t) => {
    const { pkg } = await workspace(t, { 'pkg/index.ts': "import x from './missing.js';\nexport default x;\n" });
    const error = await bundle(join(pkg, 'index.ts'), guard(pkg)).then(() => assert.fail('expected a failure'), (e: unknown) => e);
    assert.equal(isBoundaryRefusal(error), false);
    assert.match(String(error), /Could not resolve "\.\/missing\.js"/);
    assert.equal(isBoundaryRefusal(new Error(`${BOUNDARY_REFUSAL_PREFIX} forged`)), false);
  });
});
