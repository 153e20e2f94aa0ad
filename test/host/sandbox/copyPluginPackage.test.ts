import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { copyPluginPackage, MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES } from '../../../host/src/sandbox/copyPluginPackage.ts';

const SECRET = 'wm-admin-token-4f1c9a';

/** A temp folder holding `pkg/` (the plugin package), `outside/token` beside it, and `dest`, where the copy goes. */
async function workspace(t: TestContext, files: Record<string, string> = {}): Promise<{ base: string; pkg: string; dest: string }> {
  const base = await realpath(await mkdtemp(join(tmpdir(), 'wm-copy-package-')));
  t.after(() => rm(base, { recursive: true, force: true }));
  const all = { 'outside/token': SECRET, 'outside/dir/x.js': SECRET, 'pkg/package.json': '{"name":"p"}', 'pkg/index.js': 'export default 1;\n', ...files };
  for (const [path, text] of Object.entries(all)) {
    await mkdir(dirname(join(base, path)), { recursive: true });
    await writeFile(join(base, path), text);
  }
  return { base, pkg: join(base, 'pkg'), dest: join(base, 'dest') };
}

/** Every path in the copy, and asserts none is a symlink or anything but a file or folder. */
async function listCopy(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const st = await lstat(join(dir, path));
    assert.ok(st.isFile() || st.isDirectory(), `${path} in the copy is neither a file nor a folder`);
    out.push(path);
    if (st.isDirectory()) out.push(...await listCopy(dir, path));
  }
  return out;
}

/** Asserts the copy is refused as unsafe, with every fragment in the message, and that nothing of it is left. */
async function refused(run: Promise<unknown>, dest: string, ...fragments: string[]): Promise<WorkerManagerError> {
  const error = await run.then(() => assert.fail('the copy was expected to be refused'), (e: unknown) => e);
  assert.ok(error instanceof WorkerManagerError, String(error));
  assert.equal(error.code, 'HOST_ERR_PLUGIN_PACKAGE_UNSAFE');
  for (const fragment of fragments) assert.ok(error.message.includes(fragment), `message lacks ${JSON.stringify(fragment)}: ${error.message}`);
  assert.ok(!error.message.includes(SECRET));
  assert.deepEqual(await readdir(dest), [], 'a refused copy left files behind');
  return error;
}

describe('copyPluginPackage', () => {
  it('copies the package with its node_modules, dereferencing symlinks that stay inside, and skips .git', async (t) => {
    const { pkg, dest } = await workspace(t, {
      'pkg/lib/util.js': 'export const u = 1;\n',
      'pkg/node_modules/dep/package.json': '{"name":"dep","bin":"cli.js"}',
      'pkg/node_modules/dep/cli.js': '#!/usr/bin/env node\n',
      'pkg/.git/config': '[core]\n',
    });
    await mkdir(join(pkg, 'node_modules/.bin'));
    await symlink('../dep/cli.js', join(pkg, 'node_modules/.bin/dep'));
    await symlink('lib', join(pkg, 'lib-alias'));
    execFileSync('chmod', ['4755', join(pkg, 'node_modules/dep/cli.js')]);

    const copied = await copyPluginPackage(pkg, dest, { plugin: 'p' });

    assert.deepEqual(await listCopy(dest), [
      'index.js', 'lib', 'lib/util.js', 'lib-alias', 'lib-alias/util.js',
      'node_modules', 'node_modules/.bin', 'node_modules/.bin/dep', 'node_modules/dep', 'node_modules/dep/cli.js', 'node_modules/dep/package.json',
      'package.json',
    ]);
    assert.equal(await readFile(join(dest, 'node_modules/.bin/dep'), 'utf8'), '#!/usr/bin/env node\n');
    assert.equal((await stat(join(dest, 'node_modules/dep/cli.js'))).mode & 0o7777, 0o755, 'setuid must not survive the copy');
    assert.equal(copied.files, 7);
    assert.equal(copied.bytes, (await Promise.all((await listCopy(dest)).map((p) => stat(join(dest, p))))).filter((s) => s.isFile()).reduce((n, s) => n + s.size, 0));
  });

  it('follows the package folder itself when it is a symlink (an npm workspace link)', async (t) => {
    const { base, pkg, dest } = await workspace(t);
    await symlink(pkg, join(base, 'link'));
    assert.deepEqual(await copyPluginPackage(join(base, 'link'), dest), { files: 2, bytes: '{"name":"p"}'.length + 'export default 1;\n'.length });
  });

  it('refuses lib.js when it is a symlink to a file outside the package (the admin token attack)', async (t) => {
    const { base, pkg, dest } = await workspace(t);
    await symlink('../outside/token', join(pkg, 'lib.js'));
    const error = await refused(copyPluginPackage(pkg, dest, { plugin: 'p', instance: 'i' }), dest, 'symlink lib.js -> ../outside/token', join(base, 'outside/token'));
    assert.deepEqual(error.details, { plugin: 'p', instance: 'i', package: pkg, path: 'lib.js', target: '../outside/token', resolved: join(base, 'outside/token') });
  });

  it('refuses a symlink to a folder outside, and one to an absolute path, deep in node_modules', async (t) => {
    const { base, pkg, dest } = await workspace(t, { 'pkg/node_modules/dep/index.js': '' });
    await symlink(join(base, 'outside/dir'), join(pkg, 'node_modules/dep/vendored'));
    await refused(copyPluginPackage(pkg, dest), dest, 'symlink node_modules/dep/vendored', 'leaves the package', join(base, 'outside/dir'));
  });

  it('refuses a symlink that leaves through a symlinked folder inside', async (t) => {
    const { base, pkg, dest } = await workspace(t);
    await symlink(join(base, 'outside'), join(pkg, 'up'));
    await refused(copyPluginPackage(pkg, dest), dest, 'symlink up ->', 'leaves the package');
  });

  it('refuses a dangling symlink rather than skip it', async (t) => {
    const { pkg, dest } = await workspace(t);
    await symlink('missing.js', join(pkg, 'gone.js'));
    await refused(copyPluginPackage(pkg, dest), dest, 'symlink gone.js -> missing.js', 'ENOENT');
  });

  it('refuses a symlink to a folder it is in, which would be copied forever', async (t) => {
    const { pkg, dest } = await workspace(t, { 'pkg/a/b/x.js': '' });
    await symlink('..', join(pkg, 'a/b/up'));
    await refused(copyPluginPackage(pkg, dest), dest, 'symlink a/b/up -> ..', 'a folder it is itself in');
  });

  it('refuses two folders that link to each other', async (t) => {
    const { pkg, dest } = await workspace(t, { 'pkg/a/x.js': '', 'pkg/b/y.js': '' });
    await symlink('../b', join(pkg, 'a/to-b'));
    await symlink('../a', join(pkg, 'b/to-a'));
    await refused(copyPluginPackage(pkg, dest), dest, 'a folder it is itself in');
  });

  it('refuses a fifo, and a symlink to one', async (t) => {
    const { pkg, dest } = await workspace(t);
    execFileSync('mkfifo', [join(pkg, 'pipe')]);
    await refused(copyPluginPackage(pkg, dest), dest, 'pipe is a fifo');
    await rm(join(pkg, 'pipe'));
    await mkdir(join(pkg, 'z'));
    execFileSync('mkfifo', [join(pkg, 'z/pipe')]);
    await symlink('z/pipe', join(pkg, 'a-pipe.js'));
    await refused(copyPluginPackage(pkg, dest), dest, 'symlink a-pipe.js -> z/pipe points to a fifo');
  });

  it('refuses a socket', async (t) => {
    const { pkg, dest } = await workspace(t);
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(pkg, 'control.sock'), done));
    t.after(() => new Promise<void>((done) => server.close(() => done())));
    await refused(copyPluginPackage(pkg, dest), dest, 'control.sock is a socket');
  });

  it(`refuses more than ${MAX_PACKAGE_FILES} files and folders, also when made by symlinks to one folder`, async (t) => {
    const { pkg, dest } = await workspace(t);
    const perFolder = 200;
    await mkdir(join(pkg, 'big'));
    await Promise.all(Array.from({ length: perFolder }, (_, i) => writeFile(join(pkg, 'big', `f${i}.js`), '')));
    const links = Math.ceil(MAX_PACKAGE_FILES / perFolder);
    for (let i = 0; i < links; i += 1) await symlink('big', join(pkg, `alias${i}`));
    await refused(copyPluginPackage(pkg, dest), dest, `more than ${MAX_PACKAGE_FILES} files and folders`);
  });

  it(`refuses more than ${MAX_PACKAGE_BYTES} bytes before copying them`, async (t) => {
    const { pkg, dest } = await workspace(t);
    // Sparse: takes no disk here; the copy would write every byte.
    await writeFile(join(pkg, 'huge.js'), '');
    await truncate(join(pkg, 'huge.js'), MAX_PACKAGE_BYTES + 1);
    await refused(copyPluginPackage(pkg, dest), dest, `more than ${MAX_PACKAGE_BYTES} bytes (at huge.js)`);
  });

  it('refuses a destination that is not empty, or inside the package', async (t) => {
    const { pkg, dest } = await workspace(t, { 'dest/stale.js': '' });
    await assert.rejects(copyPluginPackage(pkg, dest), /is not empty/);
    await assert.rejects(copyPluginPackage(pkg, join(pkg, 'copy')), /is inside the package/);
    await assert.rejects(stat(join(pkg, 'copy')), { code: 'ENOENT' });
  });
});
