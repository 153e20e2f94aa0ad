/**
 * audit: what the keyed, anchored audit chain costs, measured against the audit log as it was, in the same run.
 *
 * 1. An audited API call: `GET /v1/plugins` on one host's services, through two API servers that differ only in their
 *    audit sink. Both authenticate (local admin token), authorize (the host's Cedar authorizer) and answer only once
 *    the decision's record is written to the log (a read's record: its fdatasync follows within the sync lag, with the
 *    next durable record). "signed" is the log as the host builds it on the embedded default: each record carries an
 *    HMAC under the generated key, and each sync publishes the signed chain head to the memory bus and appends it to
 *    the anchor file. "current" is the log without signing or anchors: the format before this change. Subjects
 *    alternate in rounds, each round starting with the next one, so machine noise hits both alike. Target: p50 ratio
 *    <= 1.2. With nats-server installed, the same call with the head published to JetStream (production) is printed
 *    as context. Also as context: a durable record (what a change or a denial waits for: written and fdatasynced)
 *    recorded straight on each log.
 * 2. `wm audit verify` throughput: `verifyAuditLog` (as the CLI runs it: every hash, MAC and link, then the anchor) on
 *    a signed log of 1,000,000 records, against the hash chain alone on the same file (what verify checked before).
 *
 * Prints the verify line, then the ratio line last.
 */
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { startApiServer } from '../../host/src/api/startApiServer.ts';
import { createEventBus } from '../../host/src/bus/createEventBus.ts';
import { subjectsFor } from '../../host/src/bus/subjects.ts';
import { loadConfig } from '../../host/src/config/loadConfig.ts';
import { BusSettings } from '../../host/src/config/schema.ts';
import { createLogger } from '../../host/src/observability/logger.ts';
import { signHead } from '../../host/src/security/audit/AuditAnchor.ts';
import { auditKey, AuditKeyring } from '../../host/src/security/audit/AuditKeyring.ts';
import { AuditLog, auditLogPath } from '../../host/src/security/audit/AuditLog.ts';
import { canonicalJson, GENESIS_HASH } from '../../host/src/security/audit/auditRecord.ts';
import { AuditSettings } from '../../host/src/security/audit/auditSettings.ts';
import type { AuditEntry } from '../../host/src/security/audit/AuditSink.ts';
import { openAuditSigning } from '../../host/src/security/audit/openAuditSigning.ts';
import { sealRecord } from '../../host/src/security/audit/sealRecord.ts';
import { verifyAuditLog } from '../../host/src/security/audit/verifyAuditLog.ts';
import { AccessGuard } from '../../host/src/security/authn/AccessGuard.ts';
import { LocalAdminAuthenticator } from '../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { processProviderYaml, startTestHost } from '../helpers/startTestHost.ts';
import { latencies } from './measure.ts';
import Value from 'typebox/value';

const API_WARMUP = 200;
const API_ROUNDS = 10;
const API_PER_ROUND = 150;
const VERIFY_RECORDS = Number(process.env['WM_BENCH_AUDIT_RECORDS'] ?? 1_000_000);
const fmt = (n: number): string => n.toFixed(1);

// --- 1. The audited API call ----------------------------------------------------------------------------------------

const t = await startTestHost(`
host: { id: bench-audit, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('local')}`);
const { config } = await loadConfig(path.join(t.dir, 'wm.yaml'), { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
const services = { workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: t.host.bus, subjects: t.host.subjects };
const work = await mkdtemp(path.join(os.tmpdir(), 'wm-bench-audit-'));
const quiet = createLogger({ level: 'silent', hostId: 'bench-audit' });

interface Subject {
  name: string;
  url: string;
  token: string;
  log: AuditLog;
  close(): Promise<void>;
}

/** An API server over the host's services whose guard audits into `log`; its own local admin token. */
async function server(name: string, log: AuditLog): Promise<Subject> {
  const authenticator = new LocalAdminAuthenticator({ stateDir: path.join(work, name) });
  await authenticator.start();
  await log.start();
  const api = await startApiServer(config, { ...services, auth: { guard: new AccessGuard({ authenticator, authorizer: t.host.authorizer, audit: log }) } });
  return {
    name,
    url: api.url,
    token: `Bearer ${(await readFile(authenticator.file, 'utf8')).trim()}`,
    log,
    close: async () => {
      await api.close(1_000);
      await log.stop();
      await authenticator.stop();
    },
  };
}

const embedded = Value.Default(AuditSettings, {}) as AuditSettings;
// Signed and anchored exactly as the host's own log on the embedded default (openAuditSigning, default settings).
const signedDir = path.join(work, 'signed', 'state');
const signed = await server('signed', new AuditLog({
  stateDir: signedDir, logger: quiet, bus: t.host.bus, subjects: t.host.subjects, hostId: 'bench-signed',
  signing: openAuditSigning({ settings: embedded, configDir: work, stateDir: signedDir, bus: t.host.bus, subjects: t.host.subjects, hostId: 'bench-signed', logger: quiet }),
}));
const current = await server('current', new AuditLog({ stateDir: path.join(work, 'current', 'state'), logger: quiet, bus: t.host.bus, subjects: t.host.subjects, hostId: 'bench-current' }));

// With nats-server: the same signed log, its head published to JetStream (the production anchor), for context.
let nats: NatsServer | undefined;
let jetstream: Subject | undefined;
let jsBus: ReturnType<typeof createEventBus> | undefined;
let natsNote = 'nats-server not installed: no JetStream-anchored subject';
try {
  if (natsServerAvailable().ok) {
    nats = await startNatsServer();
    const busSettings = Value.Default(BusSettings, { adapter: 'jetstream', subjectPrefix: 'bench', jetstream: { servers: [nats.url], connectTimeoutMs: 30_000 } }) as BusSettings;
    const jsDir = path.join(work, 'jetstream', 'state');
    jsBus = createEventBus({ settings: busSettings, configDir: work, stateDir: jsDir, hostId: 'bench-js', subjects: subjectsFor('bench'), logger: quiet });
    await jsBus.start();
    // The production default on JetStream: the bus is the only anchor. Decision events go to the host's bus, as for
    // the other two subjects, so that only the heads travel to JetStream.
    jetstream = await server('jetstream', new AuditLog({
      stateDir: jsDir, logger: quiet, bus: t.host.bus, subjects: t.host.subjects, hostId: 'bench-js',
      signing: openAuditSigning({ settings: embedded, configDir: work, stateDir: jsDir, bus: jsBus, subjects: subjectsFor('bench'), hostId: 'bench-js', logger: quiet }),
    }));
  }
} catch (error) {
  natsNote = `JetStream subject skipped: ${(error as Error).message}`;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(subject: Subject): () => Promise<void> {
  const url = new URL('/v1/plugins', subject.url);
  return () => new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers: { authorization: subject.token } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url.href} (${subject.name}): ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const subjects = [signed, current, ...(jetstream === undefined ? [] : [jetstream])];
const stats = await latencies(subjects.map(get), { warmup: API_WARMUP, perRound: API_PER_ROUND, rounds: API_ROUNDS, rotate: true });
const [signedStats, currentStats, jsStats] = stats as [{ p50: number; p95: number }, { p50: number; p95: number }, { p50: number; p95: number } | undefined];
const heads = (await readFile(path.join(work, 'signed', 'state.audit-anchor'), 'utf8').catch(() => '')).split('\n').filter((l) => l.length > 0).length;
console.log(`api GET /v1/plugins, audited (${API_ROUNDS * API_PER_ROUND} requests each after ${API_WARMUP} warm-up, one kept-alive connection)`);
console.log(`  signed + anchored (memory bus + anchor file)   p50 ${fmt(signedStats.p50)} us  p95 ${fmt(signedStats.p95)} us  (${signed.log.lastSeq} records, ${heads} heads in the anchor file)`);
console.log(`  current (unsigned, no anchor)                  p50 ${fmt(currentStats.p50)} us  p95 ${fmt(currentStats.p95)} us  (${current.log.lastSeq} records)`);
if (jsStats !== undefined && jetstream !== undefined) {
  console.log(`  signed + anchored on JetStream only (context)  p50 ${fmt(jsStats.p50)} us  p95 ${fmt(jsStats.p95)} us  (${jetstream.log.lastSeq} records)`);
} else {
  console.log(`  (${natsNote})`);
}
// Context: the durable path (a grant before a change, a denial), straight on the two logs, without HTTP.
const durableEntry: AuditEntry = {
  kind: 'authz.decision', principal: { id: 'bench', kind: 'user', tenant: 'a', source: 'oidc' }, action: 'worker:create', resource: 'Worker::*',
  decision: 'allow', policies: ['tenant-workers'], details: { channel: 'api', authorizer: 'cedar' },
};
const [signedDurable, currentDurable] = await latencies([signed, current].map((s) => () => s.log.record(durableEntry)), { warmup: 50, perRound: 100, rounds: 6, rotate: true }) as [{ p50: number; p95: number }, { p50: number; p95: number }];
console.log(`durable record (written + fdatasynced), no HTTP (context): signed p50 ${fmt(signedDurable.p50)} us, current p50 ${fmt(currentDurable.p50)} us (ratio ${(signedDurable.p50 / currentDurable.p50).toFixed(2)})`);
agent.destroy();
for (const subject of subjects) await subject.close();
await jsBus?.stop();
await nats?.dispose();
await t.stop();

// --- 2. Verify throughput -------------------------------------------------------------------------------------------

const keyring = new AuditKeyring(auditKey(Buffer.from('bench audit key: thirty-two bytes or more of it')));
const verifyDir = path.join(work, 'verify');
const file = auditLogPath(verifyDir);
const { mkdir } = await import('node:fs/promises');
await mkdir(path.dirname(file), { recursive: true });
// Records as the API writes them (an authorization decision each), sealed by the log's own sealRecord.
const entry = (i: number): AuditEntry => ({
  kind: 'authz.decision', principal: { id: `user-${i % 97}`, kind: 'user', tenant: 'a', source: 'oidc' }, action: 'worker:read', resource: `Worker::w-${i % 1009}`,
  decision: i % 5 === 0 ? 'deny' : 'allow', policies: ['tenant-workers'], correlationId: `req-${i}`, details: { channel: 'api', authorizer: 'cedar' },
});
const out = createWriteStream(file);
let prev = GENESIS_HASH;
let chain = '';
let last = sealRecord(entry(0), { seq: 1, time: new Date(0).toISOString(), prev }, keyring.current);
const genStart = performance.now();
for (let seq = 1; seq <= VERIFY_RECORDS; seq++) {
  last = sealRecord(entry(seq), { seq, time: new Date(1_700_000_000_000 + seq).toISOString(), prev }, keyring.current);
  if (seq === 1) chain = last.hash;
  prev = last.hash;
  if (!out.write(`${canonicalJson(last)}\n`)) await once(out, 'drain');
}
out.end();
await once(out, 'finish');
const genMs = performance.now() - genStart;
const head = signHead({ host: 'bench', chain, seq: last.seq, hash: last.hash, time: last.time }, keyring.current);
const size = (await stat(file)).size;

const verifyStart = performance.now();
const full = await verifyAuditLog(file, { keyring, anchors: [{ anchor: 'bench', head }] });
const verifyMs = performance.now() - verifyStart;
assert.ok(full.ok && full.records === VERIFY_RECORDS, JSON.stringify(full));
const chainStart = performance.now();
const chainOnly = await verifyAuditLog(file);
const chainMs = performance.now() - chainStart;
assert.ok(chainOnly.ok);
const perSecond = VERIFY_RECORDS / (verifyMs / 1_000);
const chainPerSecond = VERIFY_RECORDS / (chainMs / 1_000);
console.log(`verify ${VERIFY_RECORDS} records (${(size / 1e6).toFixed(0)} MB, written in ${(genMs / 1_000).toFixed(1)} s)`);
console.log(`  hashes + MACs + chain + anchor   ${(verifyMs / 1_000).toFixed(1)} s   ${Math.round(perSecond)} records/s`);
console.log(`  hash chain only (as before)      ${(chainMs / 1_000).toFixed(1)} s   ${Math.round(chainPerSecond)} records/s`);
await rm(work, { recursive: true, force: true });

console.log(JSON.stringify({ bench: 'audit', metric: 'records_per_s:verify', value: Math.round(perSecond), baseline: Math.round(chainPerSecond), ratio: +(perSecond / chainPerSecond).toFixed(2), unit: 'records/s' }));
console.log(JSON.stringify({ bench: 'audit', metric: 'p50_us:audited-call-signed-vs-current', value: +fmt(signedStats.p50), baseline: +fmt(currentStats.p50), ratio: +(signedStats.p50 / currentStats.p50).toFixed(2), unit: 'us' }));
