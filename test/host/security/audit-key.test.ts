import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { parseConfig } from '../../../host/src/config/loadConfig.ts';
import { Host } from '../../../host/src/Host.ts';
import { createLogger } from '../../../host/src/observability/logger.ts';
import { auditKeyId } from '../../../host/src/security/audit/AuditKeyring.ts';
import { auditLogPath } from '../../../host/src/security/audit/AuditLog.ts';
import { AuditSettings } from '../../../host/src/security/audit/auditSettings.ts';
import { resolveAuditSetup } from '../../../host/src/security/audit/auditSetup.ts';
import { loadAuditKey } from '../../../host/src/security/audit/loadAuditKeyring.ts';
import Value from 'typebox/value';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-audit-key-'));
  dirs.push(dir);
  return dir;
}

const settings = (value: unknown): AuditSettings => Value.Default(AuditSettings, value) as AuditSettings;
/** A logger whose lines are kept. */
function captured(): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const out: string[] = [];
  const logger = createLogger({ level: 'debug', hostId: 'h', destination: { write: (line: string) => void out.push(line) } });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => out.join('') };
}

describe('security.audit resolution', () => {
  it('embedded default: a generated key and an anchor file beside the state dir, heads on the bus after every write', () => {
    const setup = resolveAuditSetup(settings({}), { configDir: '/etc/wm', stateDir: '/var/lib/wm/state', busAdapter: 'memory' });
    assert.deepEqual(setup, {
      key: { file: '/var/lib/wm/state.audit-key', generate: true },
      previousKeys: [],
      anchorFile: '/var/lib/wm/state.audit-anchor',
      busAnchor: true,
      every: { records: 1, ms: 1_000 },
    });
    const production = resolveAuditSetup(settings({ key: { env: 'WM_AUDIT_KEY' }, previousKeys: [{ file: 'keys/2025.key' }], anchor: { everyRecords: 100, everyMs: 250 } }), { configDir: '/etc/wm', stateDir: '/var/lib/wm/state', busAdapter: 'jetstream' });
    assert.deepEqual(production, { key: { env: 'WM_AUDIT_KEY', generate: false }, previousKeys: [{ file: '/etc/wm/keys/2025.key' }], anchorFile: undefined, busAnchor: true, every: { records: 100, ms: 250 } });
  });

  for (const [name, value, bus, field] of [
    ['a key inside the state dir', { key: { file: 'state/audit.key' } }, 'memory', 'security.audit.key'],
    ['an anchor file inside the state dir', { anchor: { file: './state/sub/heads.jsonl' } }, 'memory', 'security.audit.anchor.file'],
    ['a key with both file and env', { key: { file: '/keys/a', env: 'A' } }, 'memory', 'security.audit.key'],
    ['a previous key with neither', { previousKeys: [{}] }, 'memory', 'security.audit.previousKeys[0]'],
    ['no anchor at all (jetstream, bus: false, no file)', { anchor: { bus: false } }, 'jetstream', 'security.audit.anchor'],
  ] as const) {
    it(`refuses ${name} (HOST_ERR_CONFIG_INVALID naming the field)`, () => {
      assert.throws(() => resolveAuditSetup(settings(value), { configDir: '/etc/wm', stateDir: '/etc/wm/state', busAdapter: bus }), (e: WorkerManagerError) => e.code === 'HOST_ERR_CONFIG_INVALID' && e.details?.['field'] === field);
    });
  }
});

describe('the audit key', () => {
  it('is generated once, 0600, with a warning naming the file and never its content; later starts read the same key', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'keys', 'audit.key');
    const log = captured();
    const key = await loadAuditKey({ file }, { generate: true, logger: log.logger });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const material = (await readFile(file, 'utf8')).trim();
    assert.ok(material.length >= 32);
    assert.equal(key.id, auditKeyId(Buffer.from(material)));
    const warning = log.lines().find((l) => l['level'] === 40);
    assert.equal(warning?.['keyFile'], file);
    assert.match(String(warning?.['msg']), /generated a new audit key \(mode 0600\).*back it up.*security\.audit\.key/);
    assert.ok(!log.text().includes(material), 'the key never reaches a log line');
    const again = captured();
    assert.equal((await loadAuditKey({ file }, { generate: true, logger: again.logger })).id, key.id);
    assert.deepEqual(again.lines(), [], 'an existing key is read without a word');
  });

  it('names the missing file or variable, a short key, and a readable file, never the key', async () => {
    const dir = await tempDir();
    await assert.rejects(loadAuditKey({ file: path.join(dir, 'absent.key') }), (e: WorkerManagerError) => e.code === 'HOST_ERR_AUDIT_KEY_UNAVAILABLE' && /absent\.key cannot be read \(ENOENT\)/.test(e.message));
    await assert.rejects(loadAuditKey({ env: 'WM_AUDIT_TEST_UNSET' }, { env: {} }), (e: WorkerManagerError) => e.details?.['keyEnv'] === 'WM_AUDIT_TEST_UNSET' && /is not set/.test(e.message));
    const canary = 'short-canary-7f3a';
    await assert.rejects(loadAuditKey({ env: 'K' }, { env: { K: canary } }), (e: WorkerManagerError) => /fewer than 32 bytes/.test(e.message) && !JSON.stringify({ m: e.message, d: e.details, s: e.stack }).includes(canary));
    const loose = path.join(dir, 'loose.key');
    await writeFile(loose, 'x'.repeat(40));
    await chmod(loose, 0o644);
    const log = captured();
    await loadAuditKey({ file: loose }, { logger: log.logger });
    assert.match(String(log.lines()[0]?.['msg']), /can be read by other users; chmod 600 it/);
  });
});

describe('a host with its audit key in an environment variable', () => {
  it('signs with it, and neither its records, its logs nor its errors ever hold the key', async () => {
    const dir = await tempDir();
    const canary = 'CANARY-audit-key-0123456789abcdef-0123456789';
    const yaml = 'host: { id: keyed, stateDir: ./state, logLevel: debug }\nsecurity: { audit: { key: { env: WM_TEST_AUDIT_KEY } } }\n';
    const file = path.join(dir, 'wm.yaml');
    await writeFile(file, yaml);
    const previous = process.env['WM_TEST_AUDIT_KEY'];
    const log = captured();
    try {
      process.env['WM_TEST_AUDIT_KEY'] = canary;
      const host = new Host({ loaded: parseConfig(yaml, file, { env: {} }), logger: log.logger });
      await host.start();
      await host.audit.record({ kind: 'secret.release', principal: { id: 'u', kind: 'user', source: 'oidc' }, action: 'secret:read', resource: 'Secret::x', result: 'ok' });
      await host.stop();
      const text = await readFile(auditLogPath(path.join(dir, 'state')), 'utf8');
      assert.equal((JSON.parse(text) as { kid: string }).kid, auditKeyId(Buffer.from(canary)));
      assert.ok(!text.includes(canary), 'the key reached the audit log');
      assert.ok(!log.text().includes(canary), 'the key reached a log line');
      assert.ok(!(await readFile(path.join(dir, 'state.audit-anchor'), 'utf8')).includes(canary));

      process.env['WM_TEST_AUDIT_KEY'] = 'too-short-CANARY';
      const refused = new Host({ loaded: parseConfig(yaml, file, { env: {} }), logger: log.logger });
      const error = await refused.start().then(() => assert.fail('started with a 16-byte key'), (e: unknown) => e as WorkerManagerError);
      assert.equal(error.code, 'HOST_ERR_AUDIT_KEY_UNAVAILABLE');
      assert.ok(!JSON.stringify({ m: error.message, d: error.details }).includes('too-short-CANARY'));
      assert.ok(!log.text().includes('too-short-CANARY'));
    } finally {
      if (previous === undefined) delete process.env['WM_TEST_AUDIT_KEY'];
      else process.env['WM_TEST_AUDIT_KEY'] = previous;
    }
  });
});
