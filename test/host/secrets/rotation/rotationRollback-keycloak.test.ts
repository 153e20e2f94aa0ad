import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { RotationRecord, SecretVersionEntry } from '../../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../../host/src/api/createApiServer.ts';
import { startKeycloakDouble, type KeycloakDouble } from '../../../doubles/keycloakAdmin.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../../../helpers/keycloakHostYaml.ts';
import { repoRoot } from '../../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../../helpers/waitFor.ts';
import { grantOutcome } from '../../../plugins/credentials-keycloak/helpers.ts';
import { rotationDir, startRotationHost, type RotationHost } from './rotationHost.ts';

// The rotation state table on Keycloak (credentials-keycloak through openid-client against the Keycloak double), a
// store with `secret.rotate.immediate`: a regenerated client secret is current at once and Keycloak keeps the old one
// only as the rotated secret, so the engine rolls a failed or unwanted rotation *forward* (a new secret, tested,
// replaces the one rolled back from) instead of promoting `previous`, and adopts a secret whose regeneration it did not
// hear back from instead of regenerating again. Every fault is one Keycloak produces (a node refusing a secret it has
// not seen yet, a service account switched off, an answer lost after the change), and the checks read the double's
// own state: which secret Keycloak holds current and rotated, and which ones it still accepts at its token endpoint.
// rotationRollback.test.ts and rotationRollback-backends.test.ts walk the same table on the stores that restore.

const APP = 'ci-app';
const NAME = `client-secret/${APP}`;
const URL_NAME = encodeURIComponent(NAME);
const ADMIN = 'wm-rotator';
const GRACE_MS = budget(5_000);
/** Keycloak's secret-rotation executor, in seconds: the rotated secret outlives every grace period of these tests. */
const POLICY = { expirationPeriod: 86_400, rotatedExpirationPeriod: 3_600, remainingRotationPeriod: 600 };

async function startRealm(t: TestContext): Promise<KeycloakDouble> {
  const kc = await startKeycloakDouble({ clients: [{ clientId: ADMIN, realmManagementRoles: ['manage-clients'] }, { clientId: APP }], rotation: POLICY });
  t.after(() => kc.close());
  return kc;
}

function yaml(kc: KeycloakDouble, grace: number, options: { processProvider?: boolean; requestTimeoutMs?: number } = {}): string {
  const withProcess = options.processProvider === true;
  const instance = keycloakInstanceYaml(kc, {
    name: 'keycloak',
    // The admin client's secret from a file, as the plugin's docs ask: never in the YAML.
    admin: { clientId: ADMIN, file: '${DIR}/admin-secret' },
    clients: [{ clientId: APP, rotate: true }],
    settings: { requestTimeoutMs: options.requestTimeoutMs ?? 10_000 },
  });
  return `
secrets:
  rotation:
    defaultGracePeriodMs: ${grace}
plugins:
${keycloakPluginYaml}${withProcess ? `  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
` : ''}instances:
${instance}${withProcess ? '  - { name: proc, plugin: process, default: true }\n' : ''}`;
}

async function start(t: TestContext, kc: KeycloakDouble, grace: number, options: { processProvider?: boolean; requestTimeoutMs?: number } = {}): Promise<{ h: RotationHost; app: FastifyInstance }> {
  const dir = await rotationDir(t);
  await writeFile(path.join(dir, 'admin-secret'), `${kc.client(ADMIN).secret}\n`, { mode: 0o600 });
  const h = await startRotationHost(dir, yaml(kc, grace, options));
  t.after(() => h.stop());
  const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, rotation: h.host.rotation });
  t.after(() => app.close());
  return { h, app };
}

async function records(app: FastifyInstance): Promise<RotationRecord[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/secrets/${URL_NAME}/rotations` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ rotations: RotationRecord[] }>().rotations;
}

async function versions(app: FastifyInstance): Promise<SecretVersionEntry[]> {
  const res = await app.inject({ method: 'GET', url: `/v1/secrets/${URL_NAME}/versions` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ versions: SecretVersionEntry[] }>().versions;
}

async function post(app: FastifyInstance, op: 'rotate' | 'rollback'): Promise<{ status: number; rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/v1/secrets/${URL_NAME}/${op}` });
  return { status: res.statusCode, ...res.json<{ rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }>() };
}

const currentOf = (vs: SecretVersionEntry[]): string | undefined => vs.find((v) => v.stages.includes('current'))?.version;

/** `state/step` of each audit entry of one record, in order. */
const trail = (h: RotationHost, id: string): string[] => h.audit.entries.filter((e) => e.details?.['rotationId'] === id).map((e) => `${String(e.details?.['state'])}/${String(e.details?.['step'])}`);

const completed = (h: RotationHost, id: string, what: string, timeoutMs = GRACE_MS + budget(30_000)): Promise<RotationRecord> =>
  waitFor(() => (trail(h, id).at(-1)?.startsWith('completed/') === true ? h.host.rotation.history().find((r) => r.id === id && r.state === 'completed') : undefined), what, timeoutMs);

/**
 * The version Keycloak holds current, as the plugin names it, after checking that the plugin serves the very secret
 * the double holds; the value is kept in `values` to try it at the token endpoint later.
 */
async function keycloakCurrent(h: RotationHost, kc: KeycloakDouble, values: Map<string, string>): Promise<string> {
  const got = await h.creds('keycloak').getSecret({ name: NAME });
  assert.equal(got.value, kc.client(APP).secret, 'the plugin serves the secret Keycloak holds current');
  values.set(got.version, got.value as string);
  return got.version;
}

const posts = (kc: KeycloakDouble): number => kc.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/client-secret')).length;

/** Nothing the host emitted or answered holds a secret or token the realm ever issued. */
function assertNoValue(kc: KeycloakDouble, emitted: unknown): void {
  const text = JSON.stringify(emitted);
  for (const value of [...kc.issued.secrets, ...kc.issued.tokens]) assert.equal(text.includes(value), false, 'a secret or token Keycloak issued appears in what the host emitted');
}

describe('Rotation rollback semantics on Keycloak (secret.rotate.immediate): rollback rolls forward', () => {
  it('walks the state table, rolling forward where other stores restore, and the failed version never becomes current again', { timeout: budget(240_000) }, async (t) => {
    const kc = await startRealm(t);
    const { h, app } = await start(t, kc, GRACE_MS);
    const values = new Map<string, string>();
    const v1 = await keycloakCurrent(h, kc, values);

    // pending -> in_progress -> completed: the old secret is the rotated one during grace, invalidated after it.
    const r1 = await h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    assert.deepEqual([r1.state, r1.step, r1.previousVersion], ['in_progress', 'grace', v1], JSON.stringify(r1));
    const v2 = await keycloakCurrent(h, kc, values);
    assert.equal(r1.newVersion, v2);
    assert.equal(kc.client(APP).rotated?.secret, values.get(v1), 'Keycloak keeps the old secret as the rotated one during grace');
    assert.equal(await grantOutcome(kc, APP, values.get(v1) as string), 'ok');
    await completed(h, r1.id, 'the first rotation to complete after grace');
    assert.deepEqual(trail(h, r1.id), [
      'pending/null', 'in_progress/create', 'in_progress/test', 'in_progress/promote', 'in_progress/distribute', 'in_progress/grace', 'in_progress/revoke', 'completed/revoke',
    ]);
    assert.equal(kc.client(APP).rotated, undefined, 'the old secret was invalidated in Keycloak (DELETE .../client-secret/rotated)');
    assert.equal(await grantOutcome(kc, APP, values.get(v1) as string), 'invalid_client');

    // in_progress -> failed at test: Keycloak refuses the new secret once (a node that has not seen it yet). The
    // automatic rollback cannot make v2 current again: it rolls forward to a new secret and invalidates the failed one.
    kc.fault({ match: 'token', kind: 'invalid-client', count: 1 });
    const postsBefore = posts(kc);
    const r2 = await h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    assert.deepEqual([r2.state, r2.step, r2.previousVersion, r2.error?.code], ['failed', 'test', v2, 'WM_ERR_ROTATION_FAILED'], JSON.stringify(r2));
    const v3 = r2.newVersion as string;
    assert.ok(v3 !== undefined && v3 !== v2);
    const rb2 = await waitFor(async () => (await records(app)).find((r) => r.id === r2.rollbackId && r.state === 'completed'), 'the automatic rollback to complete');
    assert.deepEqual(trail(h, rb2.id), ['rollback/roll-forward', 'rollback/redistribute', 'rollback/revoke-new', 'completed/revoke-new']);
    const v4 = await keycloakCurrent(h, kc, values);
    assert.deepEqual([rb2.operation, rb2.rollbackOf, rb2.previousVersion, rb2.newVersion], ['rollback', r2.id, v3, v4]);
    assert.ok(![v2, v3].includes(v4), 'a new secret, neither the one before nor the failed one');
    assert.equal(posts(kc) - postsBefore, 2, 'one regeneration by the rotation, one by the roll-forward');
    assert.equal(kc.client(APP).rotated, undefined, 'the failed secret, rotated by the roll-forward, was invalidated in Keycloak');
    assert.equal(await grantOutcome(kc, APP, values.get(v4) as string), 'ok');
    const afterFailure = await versions(app);
    assert.equal(currentOf(afterFailure), v4);
    const failedEntry = afterFailure.find((v) => v.version === v3);
    assert.deepEqual([failedEntry?.status, failedEntry?.failure?.rotationId, failedEntry?.failure?.step], ['revoked', r2.id, 'test']);
    // The roll-forward changed the secret consumers use: announced like a rotation.
    assert.ok(h.events.some((e) => e.busSubject === 'ci.secret.rotated' && (e.data as { rotationId?: string }).rotationId === rb2.id));
    assert.ok(h.events.some((e) => e.busSubject === 'ci.secret.rotation_failed' && (e.data as { rotationId?: string }).rotationId === r2.id));

    // failed -> pending: rotating again makes a new secret.
    const r3 = await h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    assert.deepEqual([r3.state, r3.step, r3.previousVersion], ['in_progress', 'grace', v4]);
    const v5 = await keycloakCurrent(h, kc, values);
    assert.equal(r3.newVersion, v5);

    // A manual rollback in the grace period: `previous` (v4) cannot become current again in Keycloak, so it rolls
    // forward too, and the version rolled back from stays valid (rotated) until its own grace period ends.
    const rb3 = await h.host.rotation.rollback({ name: NAME, requester: 'bob' });
    const v6 = await keycloakCurrent(h, kc, values);
    assert.deepEqual([rb3.operation, rb3.state, rb3.step, rb3.previousVersion, rb3.newVersion], ['rollback', 'rollback', 'grace', v5, v6], JSON.stringify(rb3));
    assert.ok(![v4, v5].includes(v6));
    assert.equal(kc.client(APP).rotated?.secret, values.get(v5), 'the version rolled back from is the rotated secret during grace');
    assert.equal(await grantOutcome(kc, APP, values.get(v5) as string), 'ok');
    // Nothing was restored under r3: it is not reverted, and goes on to its own end (v4 is gone from Keycloak already).
    assert.notEqual(h.host.rotation.history(NAME).find((r) => r.id === r3.id)?.state, 'rollback');
    await completed(h, rb3.id, 'the manual rollback to complete after grace');
    await completed(h, r3.id, 'the rotation before it to complete after its grace');
    assert.deepEqual(trail(h, rb3.id), ['rollback/roll-forward', 'rollback/redistribute', 'rollback/grace', 'rollback/revoke', 'completed/revoke']);
    assert.equal(kc.client(APP).rotated, undefined);
    assert.equal(await grantOutcome(kc, APP, values.get(v5) as string), 'invalid_client', 'the version rolled back from is refused after grace');

    // rollback -> pending: the secret rotates again and completes.
    const r4 = await h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    assert.equal(r4.previousVersion, v6);
    await completed(h, r4.id, 'the last rotation to complete after grace');
    assert.equal(await keycloakCurrent(h, kc, values), r4.newVersion);

    // No record ever made the failed version current, and Keycloak accepts no secret but the newest.
    assert.deepEqual(h.host.rotation.history(NAME).filter((r) => r.newVersion === v3).map((r) => [r.operation, r.state]), [['rotate', 'failed']]);
    for (const [version, value] of values) {
      assert.equal(await grantOutcome(kc, APP, value), version === r4.newVersion ? 'ok' : 'invalid_client', `version ${version} at the token endpoint`);
    }
    assertNoValue(kc, [h.events, h.audit.entries, h.logs, await records(app), await versions(app)]);
  });

  it('a roll-forward that keeps failing retries with backoff in view of the API, a queued rotation is cancelled, and it completes once Keycloak accepts again', { timeout: budget(240_000) }, async (t) => {
    const kc = await startRealm(t);
    const { h, app } = await start(t, kc, 60_000, { processProvider: true });
    const values = new Map<string, string>();
    const v1 = await keycloakCurrent(h, kc, values);
    await h.host.workers.createWorker({ workerId: 'file-w', spec: { command: ['sleep', '600'], secretRefs: [{ name: NAME, credentials: 'keycloak', mount: 'file', path: 'app' }] } });
    const held = async (): Promise<string> => (await h.host.workers.executeCommand('file-w', ['sh', '-c', 'sha256sum < "$WM_SECRETS_DIR/app" | cut -c1-16'], budget(60_000))).stdout.trim();
    const digest = (value: string): string => createHash('sha256').update(value).digest('hex').slice(0, 16);
    assert.equal(await held(), digest(values.get(v1) as string));

    // An operator switches the client's service account off: every secret Keycloak makes for it fails its test. The
    // first rotation is held in its create, at Keycloak, while a second one queues behind it.
    kc.client(APP).serviceAccountsEnabled = false;
    kc.fault({ match: /^POST .*\/client-secret$/, kind: 'hold', count: 1 });
    const first = h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    await waitFor(() => kc.holding === 1, 'the first rotation\'s regeneration to reach Keycloak');
    const second = h.host.rotation.rotate({ name: NAME, requester: 'bob' });
    await waitFor(() => h.host.rotation.history(NAME).filter((r) => r.operation === 'rotate').length === 2, 'the second rotation to be queued');
    kc.release();
    const [r1, r2] = await Promise.all([first, second]);

    assert.deepEqual([r1.state, r1.step, r1.previousVersion, r1.error?.code], ['failed', 'test', v1, 'WM_ERR_ROTATION_FAILED'], JSON.stringify(r1));
    const v2 = r1.newVersion as string;
    const stuck = (await records(app)).find((r) => r.id === r1.rollbackId);
    assert.ok(stuck !== undefined, 'the automatic rollback record');
    assert.deepEqual([stuck.state, stuck.step, stuck.retry?.lastError.code], ['rollback', 'roll-forward', 'WM_ERR_ROTATION_FAILED'], JSON.stringify(stuck));
    assert.ok((stuck.retry?.attempts ?? 0) >= 1);
    assert.deepEqual([r2.state, r2.error?.code, r2.newVersion, r2.step], ['cancelled', 'HOST_ERR_ROTATION_ROLLBACK_PENDING', undefined, undefined]);
    assert.deepEqual(trail(h, r2.id), ['pending/null', 'cancelled/null']);
    // The roll-forward made a secret too, which failed its test as well (as does each retry's): every secret Keycloak
    // lists is marked failed, the current one by the rollback.
    const during = await versions(app);
    const current = during.find((v) => v.stages.includes('current'));
    assert.ok(current !== undefined && ![v1, v2].includes(current.version));
    assert.deepEqual([current.failure?.rotationId, current.failure?.step], [stuck.id, 'roll-forward'], JSON.stringify(during));
    assert.ok(during.every((v) => v.failure !== undefined), JSON.stringify(during));
    assert.ok(h.host.rotation.history(NAME).every((r) => r.newVersion !== current.version), 'no record names a failed secret as the one it made current');

    // Never sitting silently: it tries again by itself (a new secret each time), and says so on the bus.
    const again = await waitFor(async () => {
      const rb = (await records(app)).find((r) => r.id === stuck.id);
      return (rb?.retry?.attempts ?? 0) >= 2 && rb;
    }, 'the rollback to retry by itself');
    assert.equal(again.state, 'rollback');
    assert.ok(Date.parse(again.retry?.nextAttemptAt ?? '') > Date.parse(again.retry?.lastAttemptAt ?? ''), JSON.stringify(again.retry));
    await waitFor(() => h.events.filter((e) => e.busSubject === 'ci.secret.rotation_failed' && (e.data as { rotationId?: string }).rotationId === stuck.id).length >= 2, 'an event per failed attempt');

    // A rotation now would move stages under the unfinished rollback: refused, with its code.
    const refused = await post(app, 'rotate');
    assert.deepEqual([refused.status, refused.code, refused.details?.['rollbackId']], [409, 'HOST_ERR_ROTATION_ROLLBACK_PENDING', stuck.id]);
    // A manual rollback runs the unfinished rollback's next attempt: one record, and it still fails.
    const manual = await post(app, 'rollback');
    assert.equal(manual.status, 200, JSON.stringify(manual));
    assert.deepEqual([manual.rotation?.id, manual.rotation?.state, manual.rotation?.step], [stuck.id, 'rollback', 'roll-forward']);
    assert.equal(h.host.rotation.history(NAME).filter((r) => r.operation === 'rollback').length, 1, 'no second rollback record');

    // The service account is back: the next attempt (its timer's, within the backoff) makes a secret that works and
    // moves the worker onto it; the failed secret Keycloak still held is invalidated.
    kc.client(APP).serviceAccountsEnabled = true;
    const finished = await completed(h, stuck.id, 'the rollback to complete at its next attempt', budget(120_000));
    assert.equal(finished.retry?.nextAttemptAt, undefined);
    assert.ok((finished.retry?.attempts ?? 0) >= 3, JSON.stringify(finished.retry));
    assert.ok(finished.workers.includes('file-w'), 'the worker was moved onto the rolled-forward secret');
    const now = await keycloakCurrent(h, kc, values);
    assert.equal(finished.newVersion, now);
    const after = await versions(app);
    assert.deepEqual(after.filter((v) => v.status !== 'revoked').map((v) => [v.version, v.status, v.failure ?? null]), [[now, 'active', null]], JSON.stringify(after));
    assert.ok(after.some((v) => v.failure?.rotationId === stuck.id && v.status === 'revoked'), 'the last failed secret is listed revoked');
    assert.equal(kc.client(APP).rotated, undefined, 'Keycloak holds no rotated secret');
    assert.equal(await grantOutcome(kc, APP, values.get(now) as string), 'ok');
    await waitFor(async () => (await held()) === digest(values.get(now) as string), 'the worker to hold the current secret');
    assert.equal(await grantOutcome(kc, APP, values.get(v1) as string), 'invalid_client', 'the secret before the failed rotation is gone: Keycloak keeps one rotated secret');

    // rollback -> pending: the secret rotates again and reaches the worker.
    const next = await post(app, 'rotate');
    assert.equal(next.status, 200, JSON.stringify(next));
    assert.deepEqual([next.rotation?.state, next.rotation?.previousVersion, next.rotation?.workers], ['in_progress', now, ['file-w']]);
    assertNoValue(kc, [h.events, h.audit.entries, h.logs, await records(app), await versions(app)]);
  });

  it('a service-account token (rotated by expiring, not by the engine): a rotation fails and a rollback is refused, with nothing left retrying', { timeout: budget(180_000) }, async (t) => {
    const kc = await startRealm(t);
    const { h, app } = await start(t, kc, GRACE_MS);
    const TOKEN = `token/${APP}`;
    const before = await h.creds('keycloak').getSecret({ name: TOKEN });

    const rotated = await h.host.rotation.rotate({ name: TOKEN, requester: 'alice' });
    assert.deepEqual([rotated.state, rotated.step, rotated.error?.code, rotated.newVersion], ['failed', 'create', 'WM_ERR_COMPATIBILITY', undefined], JSON.stringify(rotated));
    const rb = await completed(h, rotated.rollbackId as string, 'its rollback to complete, with nothing to undo');
    assert.deepEqual([rb.previousVersion, rb.newVersion, rb.retry], [undefined, before.version, undefined]);
    assert.deepEqual(trail(h, rb.id), ['rollback/roll-forward', 'rollback/redistribute', 'rollback/revoke-new', 'completed/revoke-new']);

    const refused = await app.inject({ method: 'POST', url: `/v1/secrets/${encodeURIComponent(TOKEN)}/rollback` });
    assert.equal(refused.json<{ code?: string }>().code, 'WM_ERR_COMPATIBILITY', refused.body);
    const cancelled = h.host.rotation.history(TOKEN).filter((r) => r.operation === 'rollback' && r.state === 'cancelled');
    assert.deepEqual(cancelled.map((r) => [r.error?.code, r.finishedAt !== undefined]), [['WM_ERR_COMPATIBILITY', true]], 'the refused rollback is recorded, finished');
    assert.ok(h.host.rotation.history(TOKEN).every((r) => r.finishedAt !== undefined), 'nothing left retrying');
    // The client secret of the same client is not held up by any of it.
    assert.equal((await post(app, 'rotate')).rotation?.state, 'in_progress');
    assertNoValue(kc, [h.events, h.audit.entries, h.logs]);
  });

  it('regression: a regeneration whose answer was lost is adopted, not made again, and the rotation completes', { timeout: budget(180_000) }, async (t) => {
    const kc = await startRealm(t);
    // The plugin gives up on Keycloak's answer after 3 s; Keycloak has regenerated the secret by then.
    const { h } = await start(t, kc, 0, { requestTimeoutMs: 3_000 });
    const values = new Map<string, string>();
    const v1 = await keycloakCurrent(h, kc, values);
    kc.fault({ match: /^POST .*\/client-secret$/, kind: 'apply-and-hang', count: 1 });

    const record = await h.host.rotation.rotate({ name: NAME, requester: 'alice' });
    const v2 = await keycloakCurrent(h, kc, values);
    assert.deepEqual([record.operation, record.previousVersion, record.newVersion, record.error], ['rotate', v1, v2, undefined], JSON.stringify(record));
    // No grace period: its revocation may have run already.
    assert.ok(['in_progress', 'completed'].includes(record.state), record.state);
    assert.equal(posts(kc), 1, 'Keycloak regenerated once: the engine did not regenerate again');
    assert.ok(h.logs.some((l) => l.includes('adopting it rather than making another')), 'the adoption is logged');
    await completed(h, record.id, 'the rotation to complete');
    assert.deepEqual(h.host.rotation.history(NAME).map((r) => [r.operation, r.state]), [['rotate', 'completed']], 'no rollback');
    assert.equal(await grantOutcome(kc, APP, values.get(v2) as string), 'ok');
    assert.equal(await grantOutcome(kc, APP, values.get(v1) as string), 'invalid_client');
    assertNoValue(kc, [h.events, h.audit.entries, h.logs]);
  });
});
