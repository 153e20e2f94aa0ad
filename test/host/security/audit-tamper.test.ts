// Tampering with the audit log as an attacker who can write the state dir, but holds neither the audit key nor the
// anchor: each case on a real host's log (real files, the embedded default's generated key and anchor file beside
// the state dir), found by the real `wm audit verify` in a child process with a message of its own, and refused by
// the next start with a coded error instead of a new chain.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, copyFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../../../host/src/config/loadConfig.ts';
import { Host } from '../../../host/src/Host.ts';
import { createLogger } from '../../../host/src/observability/logger.ts';
import { auditKey, auditMac } from '../../../host/src/security/audit/AuditKeyring.ts';
import { AuditLog, auditLogPath } from '../../../host/src/security/audit/AuditLog.ts';
import { canonicalJson, GENESIS_HASH, recordHash, type AuditRecord } from '../../../host/src/security/audit/auditRecord.ts';
import type { AuditEntry } from '../../../host/src/security/audit/AuditSink.ts';
import { StateDirLock } from '../../../host/src/StateDirLock.ts';
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

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const decision = (i: number): AuditEntry => ({
  kind: 'authz.decision', principal: { id: `user-${i}`, kind: 'user', source: 'oidc' }, action: 'worker:create', resource: `Worker::w-${i}`,
  decision: i % 2 === 0 ? 'allow' : 'deny', policies: [], correlationId: `req-${i}`,
});

/** A host folder: config, state dir, and beside it the generated key and the anchor file. */
interface HostDir {
  dir: string;
  config: string;
  file: string;
  /** Starts a real host on it (no plugins), records `count` decisions, stops it. */
  session(count: number): Promise<void>;
  /** A start that must be refused: the error it was refused with. */
  refusedStart(): Promise<WorkerManagerError>;
  lines(): Promise<string[]>;
  write(lines: string[]): Promise<void>;
  verify(): Promise<{ code: number; stdout: string; stderr: string }>;
}

let next = 0;
async function hostDir(): Promise<HostDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-audit-tamper-'));
  dirs.push(dir);
  const config = path.join(dir, 'wm.yaml');
  await writeFile(config, 'host: { id: tamper, stateDir: ./state, logLevel: warn }\n');
  const file = auditLogPath(path.join(dir, 'state'));
  const boot = async (): Promise<Host> => {
    const host = new Host({ loaded: await loadConfig(config), logger: createLogger({ level: 'silent', hostId: 'tamper' }) });
    await host.start();
    return host;
  };
  const self: HostDir = {
    dir,
    config,
    file,
    async session(count) {
      const host = await boot();
      try {
        for (let i = 0; i < count; i++) await host.audit.record(decision(++next));
      } finally {
        await host.stop();
      }
    },
    async refusedStart() {
      let host: Host | undefined;
      try {
        host = await boot();
      } catch (error) {
        return error as WorkerManagerError;
      }
      await host.stop();
      return assert.fail('the host started on a log that does not continue its anchored chain');
    },
    lines: async () => (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0),
    write: (lines) => writeFile(file, lines.length === 0 ? '' : `${lines.join('\n')}\n`),
    verify: () => wm(['audit', 'verify', '--config', config]),
  };
  return self;
}

/** Every message `wm audit verify` gave, by case: each must differ from the others. */
const findings = new Map<string, string>();
function tampered(name: string, result: { code: number; stdout: string; stderr: string }, reason: string, message: RegExp): void {
  assert.equal(result.code, 1, `${name}: exit ${result.code}\n${result.stdout}${result.stderr}`);
  assert.match(result.stdout, new RegExp(`^audit log TAMPERED: .*\\[${reason}\\]`), name);
  assert.match(result.stdout, message, name);
  findings.set(name, (result.stdout.split('\n')[0] as string).replace(/\/tmp\/\S+/g, '<path>').replace(/[0-9a-f]{12,}/g, '<hex>').replace(/\d+/g, '<n>'));
}

describe('wm audit verify on a tampered log (keyed, anchored)', () => {
  it('a clean log verifies with the key and the anchor, and a restart continues its chain', async () => {
    const h = await hostDir();
    await h.session(5);
    await h.session(5);
    const result = await h.verify();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^audit log intact: 10 records, last seq 10/);
    assert.match(result.stdout, /every record's MAC verified/);
    assert.match(result.stdout, /anchor file:.*state\.audit-anchor: holds record 10, which the log continues/);
    const chains = new Set((await h.lines()).map((l, i) => (i === 0 ? (JSON.parse(l) as AuditRecord).hash : undefined)).filter((c) => c !== undefined));
    assert.equal(chains.size, 1);
  });

  it('an edited record', async () => {
    const h = await hostDir();
    await h.session(10);
    const lines = await h.lines();
    lines[3] = (lines[3] as string).replace(/"decision":"(allow|deny)"/, (_, d: string) => `"decision":"${d === 'allow' ? 'deny' : 'allow'}"`);
    await h.write(lines);
    tampered('edit', await h.verify(), 'altered', /record 4 \(line 4\) does not match its hash: its content was changed/);
  });

  it('records cut from the end (head -n -3)', async () => {
    const h = await hostDir();
    await h.session(10);
    await h.write((await h.lines()).slice(0, -3));
    tampered('tail cut', await h.verify(), 'tail_cut', /the audit log ends at record 7, but file:.* holds record 10 of chain [0-9a-f]{12}: 3 records were cut from its end/);
    const refused = await h.refusedStart();
    assert.equal(refused.code, 'HOST_ERR_AUDIT_ANCHOR_MISMATCH');
    assert.equal(refused.details?.['reason'], 'tail_cut');
    assert.match(refused.message, /wm audit reset/);
    assert.equal((await h.lines()).length, 7, 'the refused start wrote nothing');
  });

  it('an emptied file', async () => {
    const h = await hostDir();
    await h.session(10);
    await h.write([]);
    tampered('emptied', await h.verify(), 'emptied', /the audit log .*audit\.log holds no record, but file:.* holds record 10 of chain [0-9a-f]{12}: the log was emptied/);
    assert.equal((await h.refusedStart()).details?.['reason'], 'emptied');
    assert.deepEqual(await h.lines(), [], 'no new chain began');
  });

  it('a deleted file, and a restart', async () => {
    const h = await hostDir();
    await h.session(10);
    await unlink(h.file);
    const refused = await h.refusedStart();
    assert.equal(refused.code, 'HOST_ERR_AUDIT_ANCHOR_MISMATCH');
    assert.equal(refused.details?.['reason'], 'deleted');
    await assert.rejects(access(h.file), 'the refused start did not begin a new chain');
    tampered('deleted', await h.verify(), 'deleted', /there is no audit log at .*audit\.log, but file:.* holds record 10 of chain [0-9a-f]{12}: the log was deleted/);
  });

  it('a consistent rewrite without the key: hashes and chain recomputed', async () => {
    const h = await hostDir();
    await h.session(10);
    const original = await h.lines();
    // Turn record 2 around and re-chain everything after it, as a careful attacker would; the MACs cannot follow.
    const rewrite = (sign: (record: AuditRecord) => AuditRecord): string[] => {
      let prev = GENESIS_HASH;
      return original.map((line, i) => {
        const record = JSON.parse(line) as AuditRecord;
        if (i === 1) record.decision = record.decision === 'allow' ? 'deny' : 'allow';
        record.prev = prev;
        const signed = sign(record);
        prev = signed.hash;
        return canonicalJson(signed);
      });
    };
    const rehash = (r: AuditRecord): AuditRecord => ({ ...r, hash: recordHash(r) });
    await h.write(rewrite(rehash));
    tampered('rewrite, MACs kept', await h.verify(), 'forged', /record 2 \(line 2\) does not carry a valid MAC under key [0-9a-f]{16}: it was rewritten by someone without the audit key/);
    const refused = await h.refusedStart();
    assert.deepEqual([refused.code, refused.details?.['reason']], ['HOST_ERR_AUDIT_LOG_CORRUPT', 'forged']);

    await h.write(rewrite((r) => {
      const { mac: _mac, kid: _kid, ...rest } = r;
      return rehash(rest as AuditRecord);
    }));
    tampered('rewrite, MACs stripped', await h.verify(), 'unsigned', /record 1 \(line 1\) carries no MAC: it was written before records were signed, or its MAC was stripped/);

    const own = auditKey(Buffer.from('an attacker\'s own key, 32 bytes or more'));
    await h.write(rewrite((r) => {
      const hashed = rehash({ ...r, kid: own.id });
      return { ...hashed, mac: auditMac(own, hashed.hash) };
    }));
    tampered('rewrite, signed with another key', await h.verify(), 'unknown_key', new RegExp(`record 1 \\(line 1\\) is signed with key ${own.id}, which was not given`));
  });

  it('an old file put back after its chain was reset', async () => {
    const h = await hostDir();
    await h.session(10);
    const old = path.join(h.dir, 'old-audit.log');
    await copyFile(h.file, old);
    // The chain ends (deleted), an operator acknowledges a reset, and the host goes on with the new chain.
    await unlink(h.file);
    const reset = await wm(['audit', 'reset', '--config', h.config, '--reason', 'audit.log deleted during incident 42']);
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    await h.session(12);
    await copyFile(old, h.file);
    tampered('replayed', await h.verify(), 'replayed', /the audit log is chain [0-9a-f]{12}, but file:.* holds record 13 of chain [0-9a-f]{12}: the log was replaced by an older or foreign one/);
    assert.equal((await h.refusedStart()).details?.['reason'], 'replayed');
  });

  it('gives each case its own message', () => {
    assert.equal(findings.size, 8, [...findings.keys()].join(', '));
    assert.equal(new Set(findings.values()).size, findings.size, [...findings.values()].join('\n'));
  });
});

describe('wm audit reset', () => {
  it('refuses while the log verifies and while the host runs; after a finding it begins a new chain the host continues, itself audited and anchored', async () => {
    const h = await hostDir();
    await h.session(4);
    const intact = await wm(['audit', 'reset', '--config', h.config, '--reason', 'just because']);
    assert.equal(intact.code, 1, intact.stdout + intact.stderr);
    assert.match(intact.stdout, /audit log not reset: it verifies/);

    await h.write((await h.lines()).slice(0, -1));
    assert.equal((await h.refusedStart()).code, 'HOST_ERR_AUDIT_ANCHOR_MISMATCH');
    // A running host holds the state dir's lock: taken here the way a host takes it.
    const lock = await StateDirLock.acquire(path.join(h.dir, 'state'), { hostId: 'tamper' });
    const locked = await wm(['audit', 'reset', '--config', h.config, '--reason', 'tail cut']);
    await lock.release();
    assert.equal(locked.code, 2);
    assert.match(locked.stderr, /HOST_ERR_STATE_DIR_LOCKED/);

    const done = await wm(['audit', 'reset', '--config', h.config, '--reason', 'tail cut found in review 7']);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    assert.match(done.stdout, /audit chain reset: found tail_cut; new chain [0-9a-f]{64} begins with the reset record, anchored in file:.*state\.audit-anchor/);
    assert.match(done.stdout, /the previous log is kept as .*audit\.log\.reset-/);
    const aside = (await readdir(path.dirname(h.file))).filter((f) => f.startsWith('audit.log.reset-'));
    assert.equal(aside.length, 1, 'the old log is kept as evidence');

    await h.session(3);
    const [first] = await h.lines();
    const record = JSON.parse(first as string) as AuditRecord;
    assert.equal(record.kind, 'audit.reset');
    assert.equal(record.principal.source, 'cli');
    assert.equal((record.details as { found: string }).found, 'tail_cut');
    assert.equal((record.details as { reason: string }).reason, 'tail cut found in review 7');
    assert.equal(((record.details as { previous: Array<{ seq: number }> }).previous)[0]?.seq, 4, 'the reset names the head it could not continue');
    const result = await h.verify();
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^audit log intact: 4 records, last seq 4/);
    assert.match(result.stdout, /begun by a reset by \S+ at \S+ \("tail cut found in review 7"\)/);
  });

  it('takes a head of the ended chain that reaches the anchor after the reset (a host outbox sending it late) for none', async () => {
    const h = await hostDir();
    await h.session(3);
    const anchorFile = path.join(h.dir, 'state.audit-anchor');
    const stale = (await readFile(anchorFile, 'utf8')).trim().split('\n').at(-1) as string;
    await unlink(h.file);
    const reset = await wm(['audit', 'reset', '--config', h.config, '--reason', 'deleted']);
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    // The old chain's last head lands after the reset's, as a JetStream outbox would deliver it.
    await writeFile(anchorFile, `${stale}\n`, { flag: 'a' });
    const before = await h.verify();
    assert.equal(before.code, 0, before.stdout + before.stderr);
    assert.match(before.stdout, /holds a head of the chain the reset ended/);
    await h.session(2);
    const afterwards = await h.verify();
    assert.equal(afterwards.code, 0, afterwards.stdout + afterwards.stderr);
    assert.match(afterwards.stdout, /holds record 3, which the log continues/);
  });

  it('moves a log written before records were signed out of the way (the upgrade path)', async () => {
    const h = await hostDir();
    const legacy = new AuditLog({ stateDir: path.join(h.dir, 'state') });
    await legacy.record(decision(1));
    await legacy.stop();
    const refused = await h.refusedStart();
    assert.deepEqual([refused.code, refused.details?.['reason']], ['HOST_ERR_AUDIT_LOG_CORRUPT', 'unsigned']);
    const reset = await wm(['audit', 'reset', '--config', h.config, '--reason', 'audit records are signed from now on']);
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    assert.match(reset.stdout, /found unsigned/);
    await h.session(1);
    assert.equal((await h.verify()).code, 0);
  });
});
