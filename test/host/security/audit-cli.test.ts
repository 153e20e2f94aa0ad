// `wm audit verify` as an operator runs it: the real CLI in a child process, against a real audit log.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AuditLog, auditLogPath } from '../../../host/src/security/audit/AuditLog.ts';
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
    const log = new AuditLog({ stateDir: path.join(dir, 'state') });
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
    assert.match(result.stderr, /no audit log at .*nowhere\/audit\/audit\.log/);
  });
});
