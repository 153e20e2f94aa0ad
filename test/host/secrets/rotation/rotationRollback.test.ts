import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { RotationRecord, SecretVersionEntry } from '../../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../../host/src/api/createApiServer.ts';
import { budget, waitFor } from '../../../helpers/waitFor.ts';
import { rotationDir, simpleFaultyCredentials, startRotationHost, type RotationHost } from './rotationHost.ts';

// The rotation state table on the embedded store (credentials-simple, wrapped by the credentials-simple-faulty fixture
// to make a step fail on purpose): pending -> in_progress -> completed / failed -> rollback -> pending, cancelled, and
// the rule that a version a failed rotation created never becomes current again, whoever asks.

const VALUE = 'rollback-plaintext-3f9a21';
// Long enough that a loaded machine does not end a grace period before the test has looked inside it.
const GRACE_MS = budget(5_000);

const rotation = (grace: number): string => `
secrets:
  rotation:
    defaultGracePeriodMs: ${grace}
`;

interface Faults {
  testFails?: boolean;
  unavailable?: string[];
  hold?: string[];
}
const setFaults = (dir: string, faults: Faults): Promise<void> => writeFile(path.join(dir, 'faults.json'), JSON.stringify(faults));
const heal = (dir: string): Promise<void> => rm(path.join(dir, 'faults.json'), { force: true });

/** The real API routes over the host's real engine. */
function apiOf(t: { after(fn: () => Promise<void>): void }, h: RotationHost): FastifyInstance {
  const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, rotation: h.host.rotation });
  t.after(() => app.close());
  return app;
}

async function records(app: FastifyInstance, name: string): Promise<RotationRecord[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/secrets/${name}/rotations` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ rotations: RotationRecord[] }>().rotations;
}

async function versions(app: FastifyInstance, name: string): Promise<SecretVersionEntry[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/secrets/${name}/versions` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ versions: SecretVersionEntry[] }>().versions;
}

const currentOf = (vs: SecretVersionEntry[]): string | undefined => vs.find((v) => v.stages.includes('current'))?.version;

async function post(app: FastifyInstance, name: string, op: 'rotate' | 'rollback'): Promise<{ status: number; rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/v1/secrets/${name}/${op}` });
  const body = res.json<{ rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }>();
  return { status: res.statusCode, ...body };
}

/** `state/step` of each audit entry of one record, in order. */
const trail = (h: RotationHost, id: string): string[] => h.audit.entries.filter((e) => e.details?.['rotationId'] === id).map((e) => `${String(e.details?.['state'])}/${String(e.details?.['step'])}`);

/** The record once it is completed and its last audit entry written (the state turns just before the entry). */
const completed = (h: RotationHost, id: string, what: string, timeoutMs?: number): Promise<RotationRecord> =>
  waitFor(() => (trail(h, id).at(-1)?.startsWith('completed/') === true ? h.host.rotation.history().find((r) => r.id === id && r.state === 'completed') : undefined), what, timeoutMs);

const backoffMs = (attempts: number): number => Math.min(1_000 * 2 ** attempts, 300_000);

describe('Rotation rollback semantics on the embedded store', () => {
  it('walks every transition of the state table on one secret, and never makes the failed version current', { timeout: budget(180_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(GRACE_MS) + simpleFaultyCredentials());
    t.after(() => h.stop());
    const app = apiOf(t, h);
    await h.creds().putSecret({ name: 'db', value: VALUE });

    // pending -> in_progress -> completed
    const r1 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.deepEqual([r1.state, r1.previousVersion, r1.newVersion], ['in_progress', '1', '2']);
    await completed(h, r1.id, 'the first rotation to complete after grace', GRACE_MS + 20_000);
    assert.deepEqual(trail(h, r1.id), [
      'pending/null', 'in_progress/create', 'in_progress/test', 'in_progress/promote', 'in_progress/distribute', 'in_progress/grace', 'in_progress/revoke', 'completed/revoke',
    ]);

    // in_progress -> failed, and its automatic rollback: rollback -> completed, back on the version current before it.
    await setFaults(dir, { testFails: true });
    const r2 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.deepEqual([r2.state, r2.step, r2.previousVersion, r2.newVersion, r2.error?.code], ['failed', 'test', '2', '3', 'WM_ERR_ROTATION_FAILED']);
    assert.ok(r2.rollbackId !== undefined);
    assert.deepEqual(trail(h, r2.id), ['pending/null', 'in_progress/create', 'in_progress/test', 'failed/test']);
    const rb2 = (await records(app, 'db')).find((r) => r.id === r2.rollbackId);
    assert.ok(rb2 !== undefined, 'the automatic rollback record');
    assert.deepEqual([rb2?.operation, rb2?.state, rb2?.rollbackOf, rb2?.previousVersion, rb2?.newVersion, rb2?.retry], ['rollback', 'completed', r2.id, '3', '2', undefined]);
    assert.deepEqual(trail(h, rb2.id), ['rollback/restore', 'rollback/redistribute', 'rollback/revoke-new', 'completed/revoke-new']);
    const afterFailure = await versions(app, 'db');
    assert.equal(currentOf(afterFailure), '2');
    const v3 = afterFailure.find((v) => v.version === '3');
    assert.equal(v3?.status, 'revoked');
    assert.deepEqual({ ...v3?.failure, failedAt: undefined }, { rotationId: r2.id, step: 'test', code: 'WM_ERR_ROTATION_FAILED', failedAt: undefined });

    // failed -> pending: rotating again makes a new version, never the failed one.
    await heal(dir);
    const r3 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.deepEqual([r3.state, r3.step, r3.previousVersion, r3.newVersion], ['in_progress', 'grace', '2', '4']);

    // in_progress -> rollback: a manual rollback during the grace period reverts it.
    const rb3 = await h.host.rotation.rollback({ name: 'db', requester: 'bob' });
    assert.deepEqual([rb3.state, rb3.previousVersion, rb3.newVersion], ['rollback', '4', '2']);
    assert.equal(h.host.rotation.history('db').find((r) => r.id === r3.id)?.state, 'rollback');
    assert.equal(currentOf(await versions(app, 'db')), '2');
    await completed(h, rb3.id, 'the manual rollback to complete after grace', GRACE_MS + 20_000);
    assert.deepEqual(trail(h, r3.id).slice(-2), ['in_progress/grace', 'rollback/grace']);
    assert.deepEqual(trail(h, rb3.id), ['rollback/restore', 'rollback/redistribute', 'rollback/grace', 'rollback/revoke', 'completed/revoke']);

    // rollback -> pending: the secret rotates again.
    const r4 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.deepEqual([r4.previousVersion, r4.newVersion], ['2', '5']);
    await completed(h, r4.id, 'the last rotation to complete after grace', GRACE_MS + 20_000);
    assert.equal(trail(h, r4.id)[0], 'pending/null');
    const final = await versions(app, 'db');
    assert.deepEqual(final.map((v) => [v.version, v.status, v.failure?.rotationId ?? null]), [
      ['1', 'revoked', null], ['2', 'revoked', null], ['3', 'revoked', r2.id], ['4', 'revoked', null], ['5', 'active', null],
    ]);
    // No record of any kind ever made version 3 current.
    assert.deepEqual(h.host.rotation.history('db').filter((r) => r.newVersion === '3').map((r) => [r.operation, r.state]), [['rotate', 'failed']]);
    assert.equal(JSON.stringify([h.events, h.audit.entries, h.logs, await records(app, 'db')]).includes(VALUE), false);
  });

  it('regression: a rollback that cannot redistribute retries with backoff in view of the API, and no manual rollback makes the failed version current', { timeout: budget(180_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(60_000) + simpleFaultyCredentials({ processProvider: true }));
    t.after(() => h.stop());
    const app = apiOf(t, h);
    await h.creds().putSecret({ name: 'db', value: VALUE });
    await h.host.workers.createWorker({ workerId: 'file-w', spec: { command: ['sleep', '600'], secretRefs: [{ name: 'db', mount: 'file', path: 'db' } as never] } });

    // The store cannot serve values: the new version is promoted, then cannot reach the worker; the rollback restores
    // version 1 and cannot reach the worker either.
    await setFaults(dir, { unavailable: ['getSecret'] });
    const rotated = await post(app, 'db', 'rotate');
    assert.equal(rotated.status, 200);
    const failed = rotated.rotation as RotationRecord;
    assert.deepEqual([failed.state, failed.step, failed.newVersion], ['failed', 'distribute', '2']);
    const stuck = (await records(app, 'db')).find((r) => r.id === failed.rollbackId);
    assert.ok(stuck !== undefined, 'the automatic rollback record');
    assert.deepEqual([stuck?.state, stuck?.step, stuck?.retry?.attempts, stuck?.retry?.lastError.code], ['rollback', 'redistribute', 1, 'WM_ERR_NETWORK']);
    assert.equal(Date.parse(stuck?.retry?.nextAttemptAt ?? '') - Date.parse(stuck?.retry?.lastAttemptAt ?? ''), backoffMs(1));
    const during = await versions(app, 'db');
    assert.equal(currentOf(during), '1');
    assert.deepEqual(during.map((v) => [v.version, v.status, v.stages, v.failure?.step ?? null]), [['1', 'active', ['current'], null], ['2', 'deprecated', ['previous'], 'distribute']]);

    // Never sitting silently: it tries again by itself, each time later, and says so on the bus.
    const again = await waitFor(async () => {
      const rb = (await records(app, 'db')).find((r) => r.id === stuck.id);
      return (rb?.retry?.attempts ?? 0) >= 2 && rb;
    }, 'the rollback to retry by itself');
    const attempts = again.retry?.attempts ?? 0;
    assert.equal(again.state, 'rollback');
    assert.equal(Date.parse(again.retry?.nextAttemptAt ?? '') - Date.parse(again.retry?.lastAttemptAt ?? ''), backoffMs(attempts));
    const announced = await waitFor(() => {
      const seen = h.events.filter((e) => e.busSubject === 'ci.secret.rotation_failed' && (e.data as { rotationId?: string }).rotationId === stuck.id);
      return seen.length >= 2 && seen;
    }, 'an event per failed attempt');
    assert.deepEqual(announced.slice(0, 2).map((e) => [(e.data as { attempt?: number }).attempt, (e.data as { step?: string }).step]), [[1, 'redistribute'], [2, 'redistribute']]);

    // A rotation now would move stages under the unfinished rollback: refused with a code, no record.
    const refused = await post(app, 'db', 'rotate');
    assert.deepEqual([refused.status, refused.code, refused.details?.['rollbackId']], [409, 'HOST_ERR_ROTATION_ROLLBACK_PENDING', stuck.id]);

    // The reported bug: a manual rollback here made version 2 (`previous`, the failed one) current. It runs the
    // unfinished rollback's next attempt instead, which still fails: version 1 stays current.
    const manual = await post(app, 'db', 'rollback');
    assert.equal(manual.status, 200);
    assert.deepEqual([manual.rotation?.id, manual.rotation?.state, manual.rotation?.step], [stuck.id, 'rollback', 'redistribute']);
    assert.ok((manual.rotation?.retry?.attempts ?? 0) > attempts, JSON.stringify(manual.rotation?.retry));
    assert.equal(currentOf(await versions(app, 'db')), '1');
    assert.equal(h.host.rotation.history('db').filter((r) => r.operation === 'rollback').length, 1, 'no second rollback record');

    // A copy of the store as it is now, with the failed version staged `previous` (a backup, restored below).
    const storeFile = path.join(h.host.registry.instance('vault').stateDir ?? '', 'secrets.json');
    await copyFile(storeFile, path.join(dir, 'secrets-backup.json'));

    // The store recovers: the rollback finishes (at its next attempt, or now), the failed version is revoked.
    await heal(dir);
    const done = await post(app, 'db', 'rollback');
    // The backoff timer may have run that attempt first; then there is nothing left to roll back.
    if (done.status !== 200) assert.deepEqual([done.status, done.code], [409, 'WM_ERR_CONFLICT']);
    const finished = await waitFor(async () => (await records(app, 'db')).find((r) => r.id === stuck.id && r.state === 'completed'), 'the rollback to complete');
    assert.equal(finished.retry?.nextAttemptAt, undefined);
    assert.ok((finished.retry?.attempts ?? 0) >= 3);
    assert.deepEqual((await versions(app, 'db')).map((v) => [v.version, v.status]), [['1', 'active'], ['2', 'revoked']]);
    // The consumer never held the failed version.
    const held = await h.host.workers.executeCommand('file-w', ['sh', '-c', 'sha256sum < "$WM_SECRETS_DIR/db" | cut -c1-16']);
    assert.equal(held.stdout.trim(), createHash('sha256').update(VALUE).digest('hex').slice(0, 16));

    // The store restored from that backup stages the failed version as `previous` again: refused, with a code.
    await copyFile(path.join(dir, 'secrets-backup.json'), storeFile);
    const resurrect = await post(app, 'db', 'rollback');
    assert.deepEqual([resurrect.status, resurrect.code, resurrect.details?.['version'], resurrect.details?.['rotationId']], [409, 'HOST_ERR_ROTATION_VERSION_FAILED', '2', failed.id]);
    assert.equal(currentOf(await versions(app, 'db')), '1');

    // rollback -> pending: once the rollback is done the secret rotates again, to a new version, and reaches the worker.
    const next = await post(app, 'db', 'rotate');
    assert.equal(next.status, 200);
    assert.deepEqual([next.rotation?.state, next.rotation?.previousVersion, next.rotation?.newVersion, next.rotation?.workers], ['in_progress', '1', '3', ['file-w']]);
    assert.equal(JSON.stringify([h.events, h.audit.entries, h.logs]).includes(VALUE), false);
  });

  it('pending -> cancelled: a rotation queued behind a failing one does not start while its rollback is unfinished', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(60_000) + simpleFaultyCredentials());
    t.after(() => h.stop());
    const app = apiOf(t, h);
    await h.creds().putSecret({ name: 'db', value: VALUE });

    // The first rotation is held in its test, which will fail; its rollback will not be able to revoke.
    await setFaults(dir, { testFails: true, unavailable: ['revokeVersion'], hold: ['testVersion'] });
    const first = h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    await waitFor(() => h.host.rotation.history('db').some((r) => r.operation === 'rotate' && r.step === 'test'), 'the first rotation to reach its test');
    const second = h.host.rotation.rotate({ name: 'db', requester: 'bob' });
    await waitFor(() => h.host.rotation.history('db').filter((r) => r.operation === 'rotate').length === 2, 'the second rotation to be queued');
    await setFaults(dir, { testFails: true, unavailable: ['revokeVersion'] });
    const [r1, r2] = await Promise.all([first, second]);

    assert.deepEqual([r1.state, r1.step, r1.newVersion], ['failed', 'test', '2']);
    const rb = h.host.rotation.history('db').find((r) => r.id === r1.rollbackId);
    assert.ok(rb !== undefined, 'the automatic rollback record');
    assert.deepEqual([rb?.state, rb?.step, rb?.retry?.lastError.code], ['rollback', 'revoke-new', 'WM_ERR_NETWORK']);
    assert.deepEqual([r2.state, r2.error?.code, r2.newVersion, r2.step], ['cancelled', 'HOST_ERR_ROTATION_ROLLBACK_PENDING', undefined, undefined]);
    assert.ok(r2.finishedAt !== undefined);
    assert.deepEqual(trail(h, r2.id), ['pending/null', 'cancelled/null']);
    // It changed nothing: no version of its own; the failed one was never promoted, and is marked.
    const vs = await versions(app, 'db');
    assert.deepEqual(vs.map((v) => [v.version, v.status, v.failure?.rotationId ?? null]), [['1', 'active', null], ['2', 'pending', r1.id]]);

    // Refused up front while the rollback is unfinished, through the engine as through the API.
    await assert.rejects(h.host.rotation.rotate({ name: 'db', requester: 'alice' }), (e: { code?: string }) => e.code === 'HOST_ERR_ROTATION_ROLLBACK_PENDING');

    await heal(dir);
    await h.host.rotation.rollback({ name: 'db', requester: 'bob' }).catch((e: { code?: string }) => assert.equal(e.code, 'WM_ERR_CONFLICT'));
    await waitFor(() => h.host.rotation.history('db').find((r) => r.id === rb.id && r.state === 'completed'), 'the rollback to complete');
    assert.deepEqual((await versions(app, 'db')).map((v) => [v.version, v.status]), [['1', 'active'], ['2', 'revoked']]);
    const r3 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.deepEqual([r3.state, r3.previousVersion, r3.newVersion], ['in_progress', '1', '3']);
  });

  it('keeps the failed-version mark and the retry count across a restart, and keeps retrying', { timeout: budget(180_000) }, async (t) => {
    const dir = await rotationDir(t);
    const a = await startRotationHost(dir, rotation(60_000) + simpleFaultyCredentials());
    await a.creds().putSecret({ name: 'db', value: VALUE });
    await setFaults(dir, { testFails: true, unavailable: ['revokeVersion'] });
    const failed = await a.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.equal(failed.state, 'failed');
    const before = a.host.rotation.history('db').find((r) => r.id === failed.rollbackId);
    assert.ok(before !== undefined && (before.retry?.attempts ?? 0) >= 1);
    await a.stop();

    // The store still refuses to revoke: the next start tries at once, counting on from the journal.
    const b = await startRotationHost(dir, rotation(60_000) + simpleFaultyCredentials());
    t.after(() => b.stop());
    const resumed = b.host.rotation.history('db').find((r) => r.id === before.id);
    assert.equal(resumed?.state, 'rollback');
    assert.ok((resumed?.retry?.attempts ?? 0) > (before.retry?.attempts ?? 0), JSON.stringify([before.retry, resumed?.retry]));
    assert.ok(resumed?.retry?.nextAttemptAt !== undefined);
    const marked = await b.host.rotation.listVersions({ name: 'db' });
    assert.deepEqual(marked.map((v) => [v.version, v.failure?.rotationId ?? null]), [['1', null], ['2', failed.id]]);
    await waitFor(() => (b.host.rotation.history('db').find((r) => r.id === before.id)?.retry?.attempts ?? 0) > (resumed?.retry?.attempts ?? 0), 'the resumed rollback to retry by itself');

    await heal(dir);
    await waitFor(() => b.host.rotation.history('db').find((r) => r.id === before.id && r.state === 'completed'), 'the rollback to complete once the store revokes again', 60_000);
    assert.deepEqual((await b.host.rotation.listVersions({ name: 'db' })).map((v) => [v.version, v.status, v.failure?.rotationId ?? null]), [['1', 'active', null], ['2', 'revoked', failed.id]]);
  });
});
