// `wm audit verify` as an operator runs it: the real CLI in a child process, against a real audit log.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AuditLog, auditLogPath } from '../../../host/src/security/audit/AuditLog.ts';
import { defaultAuditAnchorPath, defaultAuditKeyPath } from '../../../host/src/security/audit/auditSetup.ts';
import { FileAuditAnchor } from '../../../host/src/security/audit/FileAuditAnchor.ts';
import { loadAuditKeyring } from '../../../host/src/security/audit/loadAuditKeyring.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';
import { budget } from '../../helpers/waitFor.ts';

const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
const main = path.join(repoRoot, 'host', 'src', 'cli', 'main.ts');
// tsx compiles the CLI on every run: about a second when idle, tens of seconds on a loaded machine.
const CLI_MS = budget(120_000);

async function wm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(tsx, [main, ...args], { cwd: repoRoot, env: { ...process.env, WM_CONFIG: '' }, timeout: CLI_MS });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; killed?: boolean; stdout?: string; stderr?: string };
    if (e.killed === true) assert.fail(`wm ${args.join(' ')} did not finish within ${CLI_MS} ms`);
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('wm audit verify', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-audit-cli-'));
    const state = path.join(dir, 'state');
    // What a host on the embedded default writes: a generated key and an anchor file beside the state dir.
    const log = new AuditLog({
      stateDir: state,
      hostId: 'cli',
      signing: async () => ({
        keyring: await loadAuditKeyring({ key: { file: defaultAuditKeyPath(state), generate: true }, previousKeys: [] }),
        anchors: [new FileAuditAnchor(defaultAuditAnchorPath(state))],
      }),
    });
    for (let i = 1; i <= 4; i++) {
      await log.record({ kind: 'authz.decision', principal: { id: `u${i}`, kind: 'user', source: 'oidc' }, action: 'worker:read', resource: `Worker::w${i}`, decision: 'allow', policies: ['p'] });
    }
    await log.stop();
    await writeFile(path.join(dir, 'wm.yaml'), 'host:\n  stateDir: ./state\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('exits 0 on an intact log, found through --state-dir or --config', async () => {
    const byDir = await wm(['audit', 'verify', '--state-dir', path.join(dir, 'state')]);
    assert.equal(byDir.code, 0, byDir.stderr);
    assert.match(byDir.stdout, /audit log intact: 4 records, last seq 4/);
    const byConfig = await wm(['audit', 'verify', '--config', path.join(dir, 'wm.yaml'), '--json']);
    assert.equal(byConfig.code, 0, byConfig.stderr);
    assert.equal((JSON.parse(byConfig.stdout) as { ok: boolean; records: number }).records, 4);
  });

  it('exits 1 and names the record when one was tampered with', async () => {
    const file = auditLogPath(path.join(dir, 'state'));
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('Worker::w2', 'Worker::w9'));
    const result = await wm(['audit', 'verify', '--state-dir', path.join(dir, 'state')]);
    await writeFile(file, text);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /audit log TAMPERED: record 2 \(line 2\) does not match its hash.*\[altered\]; 1 records before it are intact/);
  });

  it('exits 2 when there is no log to check', async () => {
    const result = await wm(['audit', 'verify', '--state-dir', path.join(dir, 'nowhere')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no audit log at .*nowhere\/audit\/audit\.log \(and audit key: key file .*nowhere\.audit-key cannot be read \(ENOENT\)\)/);
  });

  it('exits 2 when the key cannot be read, naming it, and checks the records alone with --no-anchor', async () => {
    const noKey = await wm(['audit', 'verify', '--state-dir', path.join(dir, 'state'), '--key-env', 'WM_TEST_NO_SUCH_KEY']);
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /\[HOST_ERR_AUDIT_KEY_UNAVAILABLE\] audit key: environment variable WM_TEST_NO_SUCH_KEY is not set/);
    const records = await wm(['audit', 'verify', '--state-dir', path.join(dir, 'state'), '--no-anchor']);
    assert.equal(records.code, 0, records.stderr);
    assert.match(records.stdout, /note: anchors not checked \(--no-anchor\)/);
  });
});
