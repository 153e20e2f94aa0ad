// The audit chain anchored on JetStream, as in production: a real nats-server, a real host (restarted), the real
// `wm audit` CLI. The anchor stream refuses deletes and purges, survives a host restart and a nats-server restart,
// and is what catches a deleted log at the next start.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../../host/src/config/loadConfig.ts';
import { Host } from '../../host/src/Host.ts';
import { createLogger } from '../../host/src/observability/logger.ts';
import type { AuditHead } from '../../host/src/security/audit/AuditAnchor.ts';
import { auditLogPath } from '../../host/src/security/audit/AuditLog.ts';
import type { AuditRecord } from '../../host/src/security/audit/auditRecord.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

const available = natsServerAvailable();
const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules', '.bin', 'tsx');
const main = path.join(repoRoot, 'host', 'src', 'cli', 'main.ts');
const CLI_MS = budget(120_000);
const STREAM = 'WM_AUD_AUDIT_ANCHOR';
const SUBJECT = 'audit.aud.head.anchored';

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

describe('the audit chain anchored on JetStream', { skip: available.ok ? false : available.message }, () => {
  let nats: NatsServer;
  let dir: string;
  let config: string;
  let file: string;
  let nc: NatsConnection | undefined;
  let next = 0;

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-audit-js-'));
    config = path.join(dir, 'wm.yaml');
    file = auditLogPath(path.join(dir, 'state'));
    // Production-shaped: a key file the operator names (generated here on first start), the bus as the only anchor.
    await writeFile(config, `
host: { id: anchored, stateDir: ./state, logLevel: warn }
bus:
  adapter: jetstream
  subjectPrefix: aud
  jetstream: { servers: ["${nats.url}"], connectTimeoutMs: 30000, reconnectWaitMs: 100, publishTimeoutMs: 10000, outbox: { spillAfterMs: 200 } }
security:
  audit:
    key: { file: ./keys/audit.key, generate: true }
`);
  });
  after(async () => {
    await nc?.close();
    await nats?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const boot = async (): Promise<Host> => {
    const host = new Host({ loaded: await loadConfig(config), logger: createLogger({ level: 'silent', hostId: 'anchored' }) });
    await host.start();
    return host;
  };
  const record = (host: Host, count: number): Promise<void[]> => Promise.all(Array.from({ length: count }, () => {
    const i = ++next;
    return host.audit.record({ kind: 'authz.decision', principal: { id: `u${i}`, kind: 'user', source: 'oidc' }, action: 'worker:read', resource: `Worker::w${i}`, decision: 'allow', policies: [] });
  }));
  const jsm = async (): Promise<JetStreamManager> => {
    nc ??= await connect({ servers: nats.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    return jetstreamManager(nc);
  };
  /** The head the stream holds now, read with a client of the test's own. */
  const storedHead = async (): Promise<AuditHead | undefined> => {
    try {
      const m = await (await jsm()).streams.getMessage(STREAM, { last_by_subj: SUBJECT });
      return m === null ? undefined : (m.json<{ data: AuditHead }>()).data;
    } catch {
      return undefined;
    }
  };
  const lines = async (): Promise<string[]> => (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);

  it('publishes the head to a stream that refuses deletes and purges', async () => {
    const host = await boot();
    await record(host, 5);
    await host.stop();
    const head = await storedHead();
    const records = (await lines()).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(head && [head.host, head.chain, head.seq, head.hash], ['anchored', records[0]?.hash, 5, records[4]?.hash]);
    const manager = await jsm();
    const info = await manager.streams.info(STREAM);
    assert.equal(info.config.deny_delete, true);
    assert.equal(info.config.deny_purge, true);
    await assert.rejects(manager.streams.deleteMessage(STREAM, info.state.last_seq), 'a head was deleted');
    await assert.rejects(manager.streams.purge(STREAM), 'the anchor stream was purged');
    assert.equal((await storedHead())?.seq, 5);
  });

  it('survives a host restart: the next start continues the anchored chain', async () => {
    const host = await boot();
    assert.equal((host.audit as { lastSeq?: number }).lastSeq, 5);
    await record(host, 5);
    await host.stop();
    const result = await wm(['audit', 'verify', '--config', config]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^audit log intact: 10 records, last seq 10/);
    assert.match(result.stdout, /anchor bus:jetstream:audit\.aud\.head\.anchored: holds record 10, which the log continues/);
  });

  it('survives a nats-server restart, under a running host and with the host stopped', async () => {
    const host = await boot();
    await nats.stop();
    // Records written while the server is away: their heads wait in the outbox and go out once it is back.
    await record(host, 3);
    assert.equal((await storedHead())?.seq, undefined, 'the server is down');
    await nats.restart();
    let seen: AuditHead | undefined;
    await waitFor(async () => (seen = await storedHead())?.seq === 13, () => `the head of record 13 on the stream (it holds ${JSON.stringify(seen)})`, 60_000);
    await host.stop();
    await nats.restart();
    const result = await wm(['audit', 'verify', '--config', config]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /anchor bus:jetstream:audit\.aud\.head\.anchored: holds record 13, which the log continues/);
  });

  it('catches a deleted log at the next start, and begins a new chain only after an acknowledged reset', async () => {
    await unlink(file);
    const refused = await boot().then(async (host) => {
      await host.stop();
      return assert.fail('the host started a new chain over a deleted log');
    }, (e: unknown) => e as WorkerManagerError);
    assert.equal(refused.code, 'HOST_ERR_AUDIT_ANCHOR_MISMATCH');
    assert.equal(refused.details?.['reason'], 'deleted');
    assert.equal(refused.details?.['anchor'], `bus:jetstream:${SUBJECT}`);
    await assert.rejects(access(file));
    const verify = await wm(['audit', 'verify', '--config', config]);
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, /there is no audit log at .*, but bus:jetstream:audit\.aud\.head\.anchored holds record 13 of chain [0-9a-f]{12}: the log was deleted \[deleted\]/);

    const reset = await wm(['audit', 'reset', '--config', config, '--reason', 'log deleted; see incident 9']);
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    assert.match(reset.stdout, /found deleted; new chain [0-9a-f]{64} begins with the reset record, anchored in bus:jetstream:audit\.aud\.head\.anchored/);
    const head = await storedHead();
    assert.equal(head?.seq, 1, 'the reset itself is anchored');

    const host = await boot();
    await record(host, 2);
    await host.stop();
    const again = await wm(['audit', 'verify', '--config', config]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /^audit log intact: 3 records, last seq 3/);
    assert.match(again.stdout, /begun by a reset by .* \("log deleted; see incident 9"\)/);
    assert.equal((await storedHead())?.seq, 3);
  });
});
