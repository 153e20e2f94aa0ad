import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { writeApiEndpoint } from '../../../../host/src/api/apiEndpointFile.ts';
import { cliConfigPath, DEFAULT_API_URL, redactUrl, resolveConnection } from '../../../../host/src/cli/client/cliConfig.ts';

/** The pid of a process that has exited (and been reaped), so no process has it now. */
async function exitedPid(): Promise<number> {
  const child = spawn('true');
  await once(child, 'exit');
  return child.pid as number;
}

describe('cli.yaml and connection resolution', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-cli-config-'));
    await writeFile(path.join(dir, 'flag.token'), 'from-flag-file\n');
    await writeFile(path.join(dir, 'env.token'), '  from-env-file  \n');
    await writeFile(path.join(dir, 'cfg.token'), 'from-config-file');
    await writeFile(path.join(dir, 'empty.token'), '\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const config = async (name: string, text: string, mode = 0o600): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, text);
    await chmod(file, mode);
    return file;
  };

  it('finds cli.yaml from WM_CLI_CONFIG, else XDG_CONFIG_HOME, else ~/.config', () => {
    assert.deepEqual(cliConfigPath({ WM_CLI_CONFIG: '/etc/wm/cli.yaml' }), { file: '/etc/wm/cli.yaml', explicit: true });
    assert.equal(cliConfigPath({ XDG_CONFIG_HOME: '/x' }).file, '/x/worker-manager/cli.yaml');
    assert.equal(cliConfigPath({}).file, path.join(os.homedir(), '.config', 'worker-manager', 'cli.yaml'));
  });

  it('uses the host default URL and no token when nothing is configured (a missing default file is fine)', async () => {
    assert.deepEqual(await resolveConnection({}, { XDG_CONFIG_HOME: path.join(dir, 'nowhere'), WM_STATE_DIR: path.join(dir, 'no-state') }), { url: DEFAULT_API_URL });
  });

  it("finds a running local host's URL and token from its state dir's endpoint file, below flags, env and cli.yaml", async () => {
    const stateDir = path.join(dir, 'state');
    await mkdir(stateDir, { recursive: true });
    await writeFile(path.join(stateDir, 'admin.token'), 'local-admin-token\n');
    await writeApiEndpoint(stateDir, { url: 'http://127.0.0.1:41999', tokenFile: path.join(stateDir, 'admin.token'), pid: process.pid });
    const base = { XDG_CONFIG_HOME: path.join(dir, 'nowhere'), WM_STATE_DIR: stateDir };
    assert.deepEqual(await resolveConnection({}, base), { url: 'http://127.0.0.1:41999', token: 'local-admin-token' });
    // The state dir from the config wm serve would run: host.stateDir of WM_CONFIG, relative to its folder.
    const configDir = path.join(dir, 'cfg');
    await mkdir(configDir, { recursive: true });
    await writeFile(path.join(configDir, 'wm.yaml'), 'host:\n  stateDir: ../state\n');
    assert.deepEqual(await resolveConnection({}, { XDG_CONFIG_HOME: path.join(dir, 'nowhere'), WM_CONFIG: path.join(configDir, 'wm.yaml') }), { url: 'http://127.0.0.1:41999', token: 'local-admin-token' });
    // A URL given another way wins, and the local token is not sent to another origin.
    assert.deepEqual(await resolveConnection({ url: 'http://elsewhere:1' }, base), { url: 'http://elsewhere:1' });
    assert.deepEqual(await resolveConnection({}, { ...base, WM_URL: 'http://127.0.0.1:41999/' }), { url: 'http://127.0.0.1:41999', token: 'local-admin-token' });
    assert.deepEqual(await resolveConnection({ token: 'flag' }, base), { url: 'http://127.0.0.1:41999', token: 'flag' });
    // A file left by a host that is gone (killed before it could remove it) is ignored.
    await writeApiEndpoint(stateDir, { url: 'http://127.0.0.1:41999', tokenFile: path.join(stateDir, 'admin.token'), pid: await exitedPid() });
    assert.deepEqual(await resolveConnection({}, base), { url: DEFAULT_API_URL });
  });

  it('takes each setting from its flag, else the environment, else the file; tokenFile is relative to the file', async () => {
    const file = await config('full.yaml', 'url: http://from-config:1/\ntokenFile: cfg.token\n');
    const env = { WM_CLI_CONFIG: file };
    assert.deepEqual(await resolveConnection({}, env), { url: 'http://from-config:1', token: 'from-config-file' });
    assert.deepEqual(await resolveConnection({}, { ...env, WM_URL: 'http://from-env:2', WM_TOKEN_FILE: path.join(dir, 'env.token') }), { url: 'http://from-env:2', token: 'from-env-file' });
    assert.deepEqual(await resolveConnection({}, { ...env, WM_TOKEN: 'env-token', WM_TOKEN_FILE: path.join(dir, 'env.token') }), { url: 'http://from-config:1', token: 'env-token' });
    assert.deepEqual(
      await resolveConnection({ url: 'https://flag:3', tokenFile: path.join(dir, 'flag.token') }, { ...env, WM_URL: 'http://from-env:2', WM_TOKEN: 'env-token' }),
      { url: 'https://flag:3', token: 'from-flag-file' },
    );
    assert.equal((await resolveConnection({ token: 'flag-token', tokenFile: path.join(dir, 'flag.token') }, env)).token, 'flag-token');
  });

  it('refuses an invalid file with HOST_ERR_CLI_CONFIG_INVALID naming the field, and never echoes a token', async () => {
    const file = await config('bad.yaml', 'url: ftp://nope\ntoken: s3cr3t-value\ncolour: blue\n');
    await assert.rejects(resolveConnection({}, { WM_CLI_CONFIG: file }), (error: unknown) => {
      assert.ok(isWorkerManagerError(error));
      assert.equal(error.code, 'HOST_ERR_CLI_CONFIG_INVALID');
      assert.equal(error.category, 'Configuration');
      assert.match(error.message, /\/url: /);
      assert.match(error.message, /colour/);
      assert.doesNotMatch(JSON.stringify({ m: error.message, d: error.details }), /s3cr3t-value/);
      return true;
    });
    const yaml = await config('broken.yaml', 'url: [unclosed\n');
    await assert.rejects(resolveConnection({}, { WM_CLI_CONFIG: yaml }), /not valid YAML/);
    await assert.rejects(resolveConnection({}, { WM_CLI_CONFIG: path.join(dir, 'missing.yaml') }), /cannot read the CLI config/);
  });

  it('refuses an empty or missing token file and a URL that is not http(s)', async () => {
    await assert.rejects(resolveConnection({ tokenFile: path.join(dir, 'empty.token') }, { XDG_CONFIG_HOME: dir }), /is empty/);
    await assert.rejects(resolveConnection({}, { XDG_CONFIG_HOME: dir, WM_TOKEN_FILE: path.join(dir, 'gone.token') }), /ENOENT/);
    await assert.rejects(resolveConnection({ url: 'localhost:8080' }, { XDG_CONFIG_HOME: dir }), (e: unknown) => isWorkerManagerError(e) && e.code === 'HOST_ERR_CLI_CONFIG_INVALID');
  });

  it('warns when a file holding a token is readable by others', async () => {
    const file = await config('open.yaml', 'token: t\n', 0o644);
    const warnings: string[] = [];
    await resolveConnection({}, { WM_CLI_CONFIG: file }, (w) => warnings.push(w));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /chmod 600/);
    const closed = await config('closed.yaml', 'token: t\n', 0o600);
    await resolveConnection({}, { WM_CLI_CONFIG: closed }, (w) => warnings.push(w));
    assert.equal(warnings.length, 1);
  });

  it('redacts user and password from URLs shown in messages', () => {
    assert.equal(redactUrl('http://user:pw@host:1/base'), 'http://host:1/base');
    assert.equal(redactUrl('http://host:1'), 'http://host:1');
  });
});
