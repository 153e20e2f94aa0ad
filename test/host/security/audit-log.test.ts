import assert from 'node:assert/strict';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createEvent } from '../../../host/src/bus/createEvent.ts';
import type { EventEnvelope } from '../../../host/src/bus/EventEnvelope.ts';
import { MemoryEventBus } from '../../../host/src/bus/MemoryEventBus.ts';
import { subjectsFor } from '../../../host/src/bus/subjects.ts';
import { createLogger } from '../../../host/src/observability/logger.ts';
import { headSignature, signHead, type AuditHead } from '../../../host/src/security/audit/AuditAnchor.ts';
import { auditKey, auditMac, AuditKeyring } from '../../../host/src/security/audit/AuditKeyring.ts';
import { AuditLog, auditLogPath, type AuditSigning } from '../../../host/src/security/audit/AuditLog.ts';
import { canonicalJson, GENESIS_HASH, recordHash, type AuditRecord } from '../../../host/src/security/audit/auditRecord.ts';
import type { AuditEntry } from '../../../host/src/security/audit/AuditSink.ts';
import { FileAuditAnchor } from '../../../host/src/security/audit/FileAuditAnchor.ts';
import { verifyAuditLog } from '../../../host/src/security/audit/verifyAuditLog.ts';
import { waitFor } from '../../helpers/waitFor.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-audit-'));
  dirs.push(dir);
  return dir;
}

const decision = (i: number, allow = i % 2 === 0): AuditEntry => ({
  kind: 'authz.decision',
  principal: { id: `user-${i}`, kind: 'user', source: 'oidc', tenant: 'a' },
  action: 'worker:create',
  resource: `Worker::w-${i}`,
  decision: allow ? 'allow' : 'deny',
  policies: allow ? ['tenant-workers'] : [],
  correlationId: `req-${i}`,
  details: { channel: 'api' },
});

// One key for the file: each test's log has its own state dir and anchor file.
const keyring = new AuditKeyring(auditKey(Buffer.from('audit-log test key: 32 bytes or more of material')));
/** A signed log's key and an anchor file beside (not in) its state dir. */
const signing = (dir: string, every?: AuditSigning['every']) => async (): Promise<AuditSigning> => ({ keyring, anchors: [new FileAuditAnchor(`${dir}.anchor`)], ...(every === undefined ? {} : { every }) });
const signedLog = (dir: string, extra: Partial<ConstructorParameters<typeof AuditLog>[0]> = {}): AuditLog => new AuditLog({ stateDir: dir, hostId: 'h1', signing: signing(dir), ...extra });
const anchorOf = (dir: string) => new FileAuditAnchor(`${dir}.anchor`);
/** verifyAuditLog as `wm audit verify` runs it: with the key and what the anchor holds. */
const verify = async (file: string, dir: string) => verifyAuditLog(file, { keyring, anchors: [{ anchor: anchorOf(dir).name, head: await anchorOf(dir).latest() }] });

async function filled(count: number): Promise<{ dir: string; file: string; log: AuditLog }> {
  const dir = await stateDir();
  const log = signedLog(dir);
  await Promise.all(Array.from({ length: count }, (_, i) => log.record(decision(i + 1))));
  await log.stop();
  return { dir, file: auditLogPath(dir), log };
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).split('\n').filter((l) => l.length > 0);
const rewrite = (file: string, out: string[]) => writeFile(file, `${out.join('\n')}\n`);
/** The line with its decision turned around: the edit an attacker would make. */
function flipped(line: string): string {
  const out = line.includes('"decision":"allow"') ? line.replace('"decision":"allow"', '"decision":"deny"') : line.replace('"decision":"deny"', '"decision":"allow"');
  assert.notEqual(out, line);
  return out;
}

describe('AuditLog', () => {
  it('appends hash-chained, signed records in call order, even when recorded concurrently, and anchors the last head', async () => {
    const { dir, file } = await filled(200);
    const records = (await lines(file)).map((l) => JSON.parse(l) as AuditRecord);
    assert.equal(records.length, 200);
    let prev = GENESIS_HASH;
    records.forEach((r, i) => {
      assert.equal(r.seq, i + 1);
      assert.equal(r.resource, `Worker::w-${i + 1}`);
      assert.equal(r.prev, prev);
      assert.equal(r.hash, recordHash(r));
      assert.equal(r.kid, keyring.current.id);
      assert.equal(r.mac, auditMac(keyring.current, r.hash), 'the MAC is the HMAC of the hash under the audit key');
      assert.match(r.time, /^\d{4}-\d\d-\d\dT/);
      prev = r.hash;
    });
    const head = await anchorOf(dir).latest();
    assert.deepEqual(head && { host: head.host, chain: head.chain, seq: head.seq, hash: head.hash, time: head.time }, { host: 'h1', chain: records[0]?.hash, seq: 200, hash: prev, time: records[199]?.time });
    assert.equal(head && headSignature(head, keyring), 'valid');
    assert.deepEqual(await verify(file, dir), {
      ok: true, records: 200, lastSeq: 200, lastHash: prev, chain: records[0]?.hash, signed: true, keys: [keyring.current.id], anchors: [{ anchor: anchorOf(dir).name, seq: 200 }], unanchored: 0,
    });
  });

  it('publishes a head once everyRecords records were written, and at the latest everyMs after the first it does not cover', async () => {
    const heads = async (dir: string): Promise<number[]> => (await readFile(`${dir}.anchor`, 'utf8').catch(() => '')).split('\n').filter((l) => l.length > 0).map((l) => (JSON.parse(l) as AuditHead).seq);
    // By count (the timer is out of reach): a head after the 3rd record, none after the 4th until stop.
    const byCount = await stateDir();
    const counted = new AuditLog({ stateDir: byCount, hostId: 'h1', signing: signing(byCount, { records: 3, ms: 600_000 }) });
    for (let i = 1; i <= 4; i++) await counted.record(decision(i));
    await waitFor(() => counted.anchoredSeq > 0, 'the head after 3 records');
    assert.deepEqual([counted.anchoredSeq, await heads(byCount)], [3, [3]]);
    // stop() anchors what is left at once, without waiting for the timer.
    await counted.stop();
    assert.deepEqual(await heads(byCount), [3, 4]);
    // By time (the count is out of reach): the timer publishes the one record.
    const byTime = await stateDir();
    const timed = new AuditLog({ stateDir: byTime, hostId: 'h1', signing: signing(byTime, { records: 1_000, ms: 50 }) });
    await timed.record(decision(1));
    await waitFor(() => timed.anchoredSeq > 0, 'the head of record 1 after everyMs');
    assert.deepEqual(await heads(byTime), [1]);
    await timed.stop();
    assert.deepEqual(await heads(byTime), [1], 'stop has nothing left to anchor');
  });

  it('writes canonical JSON lines to a file only its owner can read', async () => {
    const { file } = await filled(1);
    const [line] = await lines(file);
    assert.equal(line, canonicalJson(JSON.parse(line as string)));
    const { stat } = await import('node:fs/promises');
    assert.equal((await stat(file)).mode & 0o077, 0);
  });

  it('continues the anchored chain after a restart', async () => {
    const { dir, file } = await filled(3);
    const chain = (JSON.parse((await lines(file))[0] as string) as AuditRecord).hash;
    const again = signedLog(dir);
    await again.start();
    assert.equal(again.lastSeq, 3);
    assert.equal(again.chain, chain);
    await again.record(decision(4));
    await again.stop();
    const result = await verify(file, dir);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(result.ok && [result.lastSeq, result.chain, result.anchors[0]?.seq], [4, chain, 4]);
  });

  it('continues a log that runs ahead of its anchor (a crash before the head went out), checking the anchored record', async () => {
    const { dir, file } = await filled(5);
    // The anchor as it was after record 3: the records after it were written, their head never published.
    const anchored = (JSON.parse((await lines(file))[2] as string) as AuditRecord);
    const chain = (JSON.parse((await lines(file))[0] as string) as AuditRecord).hash;
    await writeFile(`${dir}.anchor`, `${canonicalJson(signHead({ host: 'h1', chain, seq: 3, hash: anchored.hash, time: anchored.time }, keyring.current))}\n`);
    const again = signedLog(dir);
    await again.start();
    assert.equal(again.lastSeq, 5);
    await again.stop();
  });

  it('without signing, writes the unsigned format of before (the benchmark\'s baseline), which verify with a key rejects', async () => {
    const dir = await stateDir();
    const log = new AuditLog({ stateDir: dir });
    await log.record(decision(1));
    await log.stop();
    const [line] = await lines(auditLogPath(dir));
    const record = JSON.parse(line as string) as AuditRecord;
    assert.equal(record.mac, undefined);
    assert.equal(record.kid, undefined);
    assert.equal((await verifyAuditLog(auditLogPath(dir))).ok, true, 'the chain alone holds');
    const signed = await verifyAuditLog(auditLogPath(dir), { keyring });
    assert.deepEqual(!signed.ok && signed.broken.reason, 'unsigned');
  });

  it('never stores token or secret values', async () => {
    const dir = await stateDir();
    const log = signedLog(dir);
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl';
    await log.record({
      kind: 'secret.release', principal: { id: 'alice', kind: 'user', source: 'oidc' }, action: 'secret:read', resource: 'Secret::vault/db', result: 'ok',
      details: { token: 's3cr3t-token', authorization: 'Bearer abc.def', nested: { password: 'hunter2', value: 'p@ss', version: 'v7' }, header: jwt, list: [{ clientSecret: 'cs-1' }], note: `Bearer ${jwt}` },
    });
    await log.stop();
    const text = await readFile(auditLogPath(dir), 'utf8');
    for (const secret of ['s3cr3t-token', 'abc.def', 'hunter2', 'p@ss', jwt, 'cs-1']) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
    const record = JSON.parse(text) as AuditRecord;
    assert.equal((record.details?.['nested'] as Record<string, unknown>)['version'], 'v7', 'names and versions stay');
    assert.equal((await verify(auditLogPath(dir), dir)).ok, true);
  });

  it('publishes authorization decisions as ci.security.auth.granted / denied, with the record\'s seq and hash', async () => {
    const dir = await stateDir();
    const bus = new MemoryEventBus();
    await bus.start();
    const events: EventEnvelope[] = [];
    bus.subscribe('ci.security.>', (e) => void events.push(e));
    const log = new AuditLog({ stateDir: dir, bus, subjects: subjectsFor('ci'), hostId: 'h1', signing: signing(dir) });
    await log.record(decision(1, true));
    await log.record(decision(2, false));
    await log.record({ kind: 'secret.rotation', principal: { id: 'sec', kind: 'service', source: 'oidc' }, action: 'secret:rotate', resource: 'Secret::vault/db', result: 'ok' });
    await log.stop();
    // Barrier: the log publishes as it writes, so a marker published now reaches the subscriber after all of it.
    const marker = createEvent(subjectsFor('ci'), 'test', 'authDenied', { principal: 'marker', action: 'marker' });
    await bus.publish(marker);
    await waitFor(() => events.some((e) => e.id === marker.id), 'the marker after the decisions');
    await bus.stop();
    const published = events.filter((e) => e.id !== marker.id);
    assert.deepEqual(published.map((e) => e.busSubject), ['ci.security.auth.granted', 'ci.security.auth.denied']);
    const records = (await lines(auditLogPath(dir))).map((l) => JSON.parse(l) as AuditRecord);
    assert.deepEqual(published.map((e) => (e.data as { auditSeq: number; auditHash: string }).auditHash), [records[0]?.hash, records[1]?.hash]);
    assert.equal(published[0]?.correlationid, 'req-1');
    assert.equal((published[1]?.data as { principal: string }).principal, 'user-2');
  });

  // Real kernel failures, no fs stand-in: /dev/null takes writes but fails fdatasync (EINVAL); /dev/full fails writes
  // (ENOSPC). The log file is a symlink to one of them.
  async function onDevice(device: string): Promise<{ log: AuditLog; logged: () => Array<Record<string, unknown>> }> {
    const dir = await stateDir();
    await mkdir(path.dirname(auditLogPath(dir)), { recursive: true });
    await symlink(device, auditLogPath(dir));
    const out: string[] = [];
    const logger = createLogger({ level: 'info', hostId: 'h', destination: { write: (line: string) => void out.push(line) } });
    return { log: new AuditLog({ stateDir: dir, logger, signing: signing(dir) }), logged: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
  }

  it('a failed sync rejects the records it covered, logs them, and refuses every later record (sync_failed)', async () => {
    const { log, logged } = await onDevice('/dev/null');
    await assert.rejects(log.record(decision(1, true)), (e: WorkerManagerError) => e.code === 'HOST_ERR_AUDIT_UNAVAILABLE' && e.details?.['reason'] === 'sync_failed');
    // A later sync could succeed and prove nothing about what the failed one lost: the log stays closed.
    await assert.rejects(log.record(decision(2)), (e: WorkerManagerError) => e.code === 'HOST_ERR_AUDIT_UNAVAILABLE' && e.details?.['reason'] === 'sync_failed');
    const fatal = logged().find((l) => l['level'] === 60);
    assert.ok(fatal !== undefined, 'no fatal log line');
    const records = fatal['records'] as AuditRecord[];
    assert.deepEqual(records.map((r) => [r.seq, r.resource, r.decision]), [[1, 'Worker::w-1', 'allow']], 'the log line is the surviving copy of the unsynced record');
    await log.stop();
  });

  it("a read's record (until: written) resolves once written; its sync, head and event follow with the next durable record", async () => {
    const dir = await stateDir();
    const bus = new MemoryEventBus();
    await bus.start();
    const published: EventEnvelope[] = [];
    bus.subscribe('ci.security.>', (e) => void published.push(e));
    // The lag is out of reach, so only a durable record (or stop) can sync.
    const log = new AuditLog({ stateDir: dir, hostId: 'h1', bus, subjects: subjectsFor('ci'), signing: signing(dir), syncLagMs: 600_000 });
    await log.record(decision(2), { until: 'written' });
    assert.equal((await lines(auditLogPath(dir))).length, 1, 'written to the file before it resolves');
    // Barrier: a marker published now reaches the subscriber after any decision event published before it.
    const marker = createEvent(subjectsFor('ci'), 'test', 'authDenied', { principal: 'marker', action: 'marker' });
    await bus.publish(marker);
    await waitFor(() => published.some((e) => e.id === marker.id), 'the marker event');
    assert.deepEqual([log.anchoredSeq, published.length], [0, 1], 'no head and no event for a record that is not synced');
    await log.record(decision(4));
    await waitFor(() => log.anchoredSeq === 2, 'the head covering both records, after the durable one');
    await waitFor(() => published.length === 3, 'both decision events');
    assert.deepEqual(published.slice(1).map((e) => (e.data as { auditSeq: number }).auditSeq), [1, 2], 'published in order once synced');
    await log.stop();
    await bus.stop();
  });

  it('syncs and anchors a read\'s record within syncLagMs with no durable record after it, and at stop', async () => {
    const lagged = await stateDir();
    const log = new AuditLog({ stateDir: lagged, hostId: 'h1', signing: signing(lagged), syncLagMs: 30 });
    await log.record(decision(2), { until: 'written' });
    await waitFor(() => log.anchoredSeq === 1, 'the head of the read after the sync lag');
    await log.stop();
    const atStop = await stateDir();
    const stopped = new AuditLog({ stateDir: atStop, hostId: 'h1', signing: signing(atStop), syncLagMs: 600_000 });
    await stopped.record(decision(2), { until: 'written' });
    await stopped.stop();
    assert.equal((await anchorOf(atStop).latest())?.seq, 1, 'stop syncs and anchors the read');
    assert.equal((await verify(auditLogPath(atStop), atStop)).ok, true);
  });

  it('a failed sync after a read was answered logs the read\'s record at fatal and refuses what follows', async () => {
    const { log, logged } = await onDevice('/dev/null');
    await log.record(decision(2), { until: 'written' });
    await assert.rejects(log.record(decision(4)), (e: WorkerManagerError) => e.details?.['reason'] === 'sync_failed');
    const fatal = logged().find((l) => l['level'] === 60);
    assert.deepEqual((fatal?.['records'] as AuditRecord[] | undefined)?.map((r) => r.seq), [1, 2], 'both unsynced records are in the surviving log line');
    await assert.rejects(log.record(decision(6), { until: 'written' }), (e: WorkerManagerError) => e.details?.['reason'] === 'sync_failed');
    await log.stop();
  });

  it('a failed write rejects its records before anything runs, and the log goes on (write_failed)', async () => {
    const { log } = await onDevice('/dev/full');
    await assert.rejects(log.record(decision(1)), (e: WorkerManagerError) => e.code === 'HOST_ERR_AUDIT_UNAVAILABLE' && e.details?.['reason'] === 'write_failed' && /ENOSPC/.test(e.message));
    await assert.rejects(log.record(decision(2)), (e: WorkerManagerError) => e.details?.['reason'] === 'write_failed', 'a write failure does not close the log: the next write is tried');
    await log.stop();
  });

  it('sets a torn last line aside at start and continues from the last whole record', async () => {
    const { dir, file } = await filled(3);
    await appendFile(file, '{"action":"worker:cre');
    assert.equal((await verify(file, dir)).ok, false);
    const log = signedLog(dir);
    await log.record(decision(4));
    await log.stop();
    assert.equal((await verify(file, dir)).ok, true);
    const aside = (await readdir(path.dirname(file))).filter((f) => f.startsWith('audit.log.torn-'));
    assert.equal(aside.length, 1);
    assert.equal(await readFile(path.join(path.dirname(file), aside[0] as string), 'utf8'), '{"action":"worker:cre');
  });

  it('refuses to start on a last record that does not match its hash', async () => {
    const { dir, file } = await filled(2);
    const out = await lines(file);
    out[1] = flipped(out[1] as string);
    await rewrite(file, out);
    await assert.rejects(signedLog(dir).start(), (e: Error & { code?: string }) => e.code === 'HOST_ERR_AUDIT_LOG_CORRUPT' && /wm audit verify/.test(e.message));
  });

  it('refuses to start on a log whose first records were cut, even with no anchored head (heads name the chain by record 1)', async () => {
    const { dir, file } = await filled(3);
    await rm(`${dir}.anchor`);
    await rewrite(file, (await lines(file)).slice(1));
    await assert.rejects(signedLog(dir).start(), (e: WorkerManagerError) => e.code === 'HOST_ERR_AUDIT_LOG_CORRUPT' && e.details?.['reason'] === 'out_of_sequence');
  });
});

describe('verifyAuditLog finds the first broken record', () => {
  it('an altered record', async () => {
    const { dir, file } = await filled(5);
    const out = await lines(file);
    out[2] = flipped(out[2] as string);
    await rewrite(file, out);
    const result = await verify(file, dir);
    assert.deepEqual(result.ok ? undefined : { ...result.broken, records: result.records }, { line: 3, seq: 3, reason: 'altered', message: 'record 3 (line 3) does not match its hash: its content was changed', records: 2 });
  });

  it('an altered record whose hash was recomputed without the key', async () => {
    const { dir, file } = await filled(5);
    const out = await lines(file);
    const forged = JSON.parse(out[2] as string) as AuditRecord;
    forged.decision = forged.decision === 'allow' ? 'deny' : 'allow';
    forged.hash = recordHash(forged);
    out[2] = canonicalJson(forged);
    await rewrite(file, out);
    const result = await verify(file, dir);
    assert.equal(result.ok, false);
    assert.deepEqual(!result.ok && [result.broken.line, result.broken.reason], [3, 'forged']);
  });

  it('a record replaced by a validly signed one of another log', async () => {
    const { dir, file } = await filled(5);
    const other = await filled(5);
    const out = await lines(file);
    out[2] = (await lines(other.file))[2] as string;
    assert.notEqual(out[2], (await lines(file))[2]);
    await rewrite(file, out);
    const result = await verify(file, dir);
    assert.deepEqual(!result.ok && [result.broken.line, result.broken.reason], [3, 'chain_broken']);
  });

  it('a removed record', async () => {
    const { dir, file } = await filled(5);
    const out = await lines(file);
    out.splice(2, 1);
    await rewrite(file, out);
    const result = await verify(file, dir);
    assert.deepEqual(!result.ok && [result.broken.line, result.broken.seq, result.broken.reason], [3, 4, 'out_of_sequence']);
  });

  it('reordered records', async () => {
    const { dir, file } = await filled(5);
    const out = await lines(file);
    [out[1], out[2]] = [out[2] as string, out[1] as string];
    await rewrite(file, out);
    const result = await verify(file, dir);
    assert.deepEqual(!result.ok && [result.broken.line, result.broken.seq, result.broken.reason], [2, 3, 'out_of_sequence']);
  });

  it('a log cut in the middle of a line, and a line that is not a record', async () => {
    const { dir, file } = await filled(3);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.slice(0, text.length - 20));
    const cut = await verify(file, dir);
    assert.deepEqual(!cut.ok && [cut.broken.line, cut.broken.reason, cut.records], [3, 'truncated', 2]);
    await writeFile(file, `${text}not json\n`);
    const garbage = await verify(file, dir);
    assert.deepEqual(!garbage.ok && [garbage.broken.line, garbage.broken.reason], [4, 'unreadable']);
  });

  it('a first record that does not start the chain', async () => {
    const { dir, file } = await filled(3);
    await rewrite(file, (await lines(file)).slice(1));
    const result = await verify(file, dir);
    assert.deepEqual(!result.ok && [result.broken.line, result.broken.seq, result.broken.reason], [1, 2, 'out_of_sequence']);
  });
});
