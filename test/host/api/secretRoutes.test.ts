import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../../host/src/errors.ts';
import type { RotationRecord, SecretVersionEntry } from '../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import type { SecretRotation } from '../../../host/src/api/SecretRotation.ts';
import type { RotationEngine } from '../../../host/src/secrets/rotation/RotationEngine.ts';
import { startTestHost, type TestHost } from '../../helpers/startTestHost.ts';

// The HTTP mapping of the secrets routes, over a small in-test RotationEngine that records what it was asked. The
// engine itself (and its use of the real credentials plugin) is tested with the engine.

const SECRET_VALUE = 's3cr3t-value-never-shown';

// The engine the host passes as `rotation` must fit the interface the routes call (checked by the typechecker).
void ((engine: RotationEngine): SecretRotation => engine);

/** Remembers every call; answers like the engine does, including errors by code. */
class RecordingRotation implements SecretRotation {
  readonly calls: Array<{ op: string; req: Record<string, unknown> }> = [];

  async listVersions(req: { name: string; credentials?: string; tenant?: string }): Promise<SecretVersionEntry[]> {
    this.calls.push({ op: 'listVersions', req });
    if (req.name === 'missing') throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${req.name}'`, { details: { name: req.name } });
    if (req.name === 'forbidden') throw new WorkerManagerError('WM_ERR_AUTHORIZATION', 'tenant may not read this secret');
    // A store that puts more in a version than the contract says: the API must not pass it on.
    const leaky = { version: 'v2', status: 'active', stages: ['current'], createdAt: '2026-01-02T00:00:00.000Z', value: SECRET_VALUE } as SecretVersionEntry;
    const failed = {
      version: 'v3', status: 'revoked', stages: [], createdAt: '2026-01-03T00:00:00.000Z',
      failure: { rotationId: 'r-3', step: 'test', code: 'WM_ERR_ROTATION_FAILED', failedAt: '2026-01-03T00:00:01.000Z', reason: SECRET_VALUE },
    } as SecretVersionEntry;
    return [{ version: 'v1', status: 'deprecated', stages: ['previous'], createdAt: '2026-01-01T00:00:00.000Z' }, leaky, failed];
  }

  async rotations(req: { name: string; credentials?: string; tenant?: string }): Promise<RotationRecord[]> {
    this.calls.push({ op: 'rotations', req });
    const failed = { ...this.#record(req.name, req.credentials, 'alice', 'failed'), newVersion: 'v3', step: 'distribute', rollbackId: 'r-2', error: { code: 'WM_ERR_ROTATION_FAILED', message: 'x' } };
    const retrying: RotationRecord = {
      ...this.#record(req.name, req.credentials, 'alice', 'rollback'), id: 'r-2', operation: 'rollback', rollbackOf: 'r-1', step: 'redistribute', previousVersion: 'v3', newVersion: 'v2',
      retry: { attempts: 3, lastAttemptAt: '2026-01-01T00:00:08.000Z', nextAttemptAt: '2026-01-01T00:00:24.000Z', lastError: { code: 'WM_ERR_TIMEOUT', message: 'worker w-1 did not answer' } },
    };
    delete retrying.finishedAt;
    // An engine field the record schema does not declare must not leak through the API.
    return [failed, { ...retrying, journalOnly: SECRET_VALUE } as RotationRecord];
  }

  async rotate(req: Parameters<SecretRotation['rotate']>[0]): Promise<RotationRecord> {
    this.calls.push({ op: 'rotate', req: { ...req } });
    if (req.credentials === 'nowhere') throw new WorkerManagerError('WM_ERR_CONFLICT', 'a rotation of this secret is in progress');
    if (req.credentials === 'stuck') throw hostError('HOST_ERR_ROTATION_ROLLBACK_PENDING', 'secret x has an unfinished rollback', { details: { rollbackId: 'r-2' } });
    return { ...this.#record(req.name, req.credentials, req.requester, 'completed'), newValue: SECRET_VALUE } as RotationRecord;
  }

  async rollback(req: Parameters<SecretRotation['rollback']>[0]): Promise<RotationRecord> {
    this.calls.push({ op: 'rollback', req: { ...req } });
    if (req.credentials === 'failed') throw hostError('HOST_ERR_ROTATION_VERSION_FAILED', 'secret x version v3 failed rotation r-3', { details: { version: 'v3', rotationId: 'r-3' } });
    return this.#record(req.name, req.credentials, req.requester, 'completed');
  }

  #record(name: string, credentials: string | undefined, requester: string, state: RotationRecord['state']): RotationRecord {
    return {
      id: 'r-1', credentials: credentials ?? 'vault', name, trigger: 'manual', requester, state, previousVersion: 'v1', newVersion: 'v2',
      startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:01.000Z', workers: ['w-1'], latencyMs: 1000, operation: 'rotate',
    };
  }
}

describe('secrets routes', () => {
  let t: TestHost;
  let app: FastifyInstance;
  let rotation: RecordingRotation;

  before(async () => {
    t = await startTestHost('host: { id: api-secrets, stateDir: ${DIR}/state }\nplugins: []\ninstances: []\n');
    rotation = new RecordingRotation();
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, rotation });
  });
  after(async () => {
    await app.close();
    await t.stop();
  });

  it('lists versions as metadata only, never a value, passing name and credentials through', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/secrets/db%2Fpassword/versions?credentials=vault' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), {
      name: 'db/password',
      versions: [
        { version: 'v1', status: 'deprecated', stages: ['previous'], createdAt: '2026-01-01T00:00:00.000Z' },
        { version: 'v2', status: 'active', stages: ['current'], createdAt: '2026-01-02T00:00:00.000Z' },
        { version: 'v3', status: 'revoked', stages: [], createdAt: '2026-01-03T00:00:00.000Z', failure: { rotationId: 'r-3', step: 'test', code: 'WM_ERR_ROTATION_FAILED', failedAt: '2026-01-03T00:00:01.000Z' } },
      ],
    });
    assert.doesNotMatch(res.body, new RegExp(SECRET_VALUE));
    assert.deepEqual(rotation.calls.at(-1), { op: 'listVersions', req: { name: 'db/password', credentials: 'vault' } });
  });

  it('lists the rotation records of a secret with the retry state of an unfinished rollback, declared fields only', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/secrets/db%2Fpassword/rotations?credentials=vault' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ name: string; rotations: RotationRecord[] }>();
    assert.equal(body.name, 'db/password');
    assert.deepEqual(body.rotations.map((r) => [r.id, r.operation, r.state, r.step, r.rollbackId ?? r.rollbackOf]), [['r-1', 'rotate', 'failed', 'distribute', 'r-2'], ['r-2', 'rollback', 'rollback', 'redistribute', 'r-1']]);
    assert.deepEqual(body.rotations[1]?.retry, { attempts: 3, lastAttemptAt: '2026-01-01T00:00:08.000Z', nextAttemptAt: '2026-01-01T00:00:24.000Z', lastError: { code: 'WM_ERR_TIMEOUT', message: 'worker w-1 did not answer' } });
    assert.doesNotMatch(res.body, new RegExp(SECRET_VALUE));
    assert.deepEqual(rotation.calls.at(-1), { op: 'rotations', req: { name: 'db/password', credentials: 'vault' } });
  });

  it('rotates (manual trigger, requester, correlation id) and answers the record without anything beyond its fields', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/secrets/api-key/rotate', payload: { credentials: 'vault' }, headers: { 'x-correlation-id': 'corr-rot' } });
    assert.equal(res.statusCode, 200, res.body);
    const { rotation: record } = res.json<{ rotation: RotationRecord }>();
    assert.equal(record.state, 'completed');
    assert.equal(record.newVersion, 'v2');
    assert.deepEqual(record.workers, ['w-1']);
    assert.doesNotMatch(res.body, new RegExp(SECRET_VALUE));
    assert.deepEqual(rotation.calls.at(-1), { op: 'rotate', req: { name: 'api-key', credentials: 'vault', requester: 'anonymous', correlationId: 'corr-rot', trigger: 'manual' } });
  });

  it('takes rotate and rollback without a body (the default credentials instance)', async () => {
    const rotated = await app.inject({ method: 'POST', url: '/v1/secrets/api-key/rotate' });
    assert.equal(rotated.statusCode, 200, rotated.body);
    assert.equal(rotation.calls.at(-1)?.req['credentials'], undefined);
    const rolled = await app.inject({ method: 'POST', url: '/v1/secrets/api-key/rollback', headers: { 'x-correlation-id': 'corr-rb' } });
    assert.equal(rolled.statusCode, 200, rolled.body);
    assert.deepEqual(rotation.calls.at(-1), { op: 'rollback', req: { name: 'api-key', requester: 'anonymous', correlationId: 'corr-rb' } });
    assert.equal(rolled.json<{ rotation: RotationRecord }>().rotation.previousVersion, 'v1');
  });

  it('passes the caller\'s id and tenant (set by the auth hook) to the engine', async () => {
    const withCaller = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, rotation });
    withCaller.addHook('onRequest', async (req) => {
      Object.assign(req, { principal: { kind: 'service', id: 'ci-bot', tenant: 'blue', roles: [], scopes: [], source: 'oidc' } });
    });
    try {
      const res = await withCaller.inject({ method: 'POST', url: '/v1/secrets/api-key/rollback', payload: {} });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(rotation.calls.at(-1)?.req['requester'], 'ci-bot');
      assert.equal(rotation.calls.at(-1)?.req['tenant'], 'blue');
      await withCaller.inject({ method: 'GET', url: '/v1/secrets/api-key/versions' });
      assert.deepEqual(rotation.calls.at(-1), { op: 'listVersions', req: { name: 'api-key', tenant: 'blue' } });
    } finally {
      await withCaller.close();
    }
  });

  it('maps engine errors to their statuses: 404 unknown secret, 403 other tenant, 409 rotation in progress', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v1/secrets/missing/versions' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json<{ code: string }>().code, 'WM_ERR_SECRET_NOT_FOUND');
    const forbidden = await app.inject({ method: 'GET', url: '/v1/secrets/forbidden/versions' });
    assert.equal(forbidden.statusCode, 403);
    const busy = await app.inject({ method: 'POST', url: '/v1/secrets/x/rotate', payload: { credentials: 'nowhere' } });
    assert.equal(busy.statusCode, 409);
  });

  it('answers 409 with the code when a rollback would restore a failed version, or a rotation meets an unfinished rollback', async () => {
    const failed = await app.inject({ method: 'POST', url: '/v1/secrets/x/rollback', payload: { credentials: 'failed' } });
    assert.equal(failed.statusCode, 409, failed.body);
    assert.deepEqual([failed.json<{ code: string }>().code, failed.json<{ details: { version: string } }>().details.version], ['HOST_ERR_ROTATION_VERSION_FAILED', 'v3']);
    const stuck = await app.inject({ method: 'POST', url: '/v1/secrets/x/rotate', payload: { credentials: 'stuck' } });
    assert.equal(stuck.statusCode, 409, stuck.body);
    assert.deepEqual([stuck.json<{ code: string }>().code, stuck.json<{ details: { rollbackId: string } }>().details.rollbackId], ['HOST_ERR_ROTATION_ROLLBACK_PENDING', 'r-2']);
  });

  it('refuses malformed requests with 400 and the path', async () => {
    const cases: Array<[string, string, object | undefined, string]> = [
      ['POST', '/v1/secrets/x/rotate', { credentials: 'vault', value: 'new' }, '/body/value'],
      ['POST', '/v1/secrets/x/rollback', { credentials: 'Not Valid' }, '/body/credentials'],
      ['GET', '/v1/secrets/x/versions?credentials=UPPER', undefined, '/querystring/credentials'],
      ['GET', '/v1/secrets/x/versions?version=1', undefined, '/querystring/version'],
      ['GET', `/v1/secrets/${'n'.repeat(513)}/versions`, undefined, '/params/name'],
    ];
    for (const [method, url, payload, path] of cases) {
      const res = await app.inject({ method: method as 'GET', url, ...(payload === undefined ? {} : { payload }) });
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.equal(res.json<{ details: { path: string } }>().details.path, path, url);
    }
    // Longer than the router takes at all: refused before routing, still with the one error body.
    const huge = await app.inject({ method: 'GET', url: `/v1/secrets/${'n'.repeat(3_000)}/versions`, headers: { 'x-correlation-id': 'corr-huge' } });
    assert.equal(huge.statusCode, 400);
    assert.deepEqual(huge.json<{ code: string; correlationId: string; details: { reason: string } }>().details.reason, 'FST_ERR_MAX_PARAM_LENGTH');
    assert.equal(huge.json<{ correlationId: string }>().correlationId, 'corr-huge');
    assert.equal(huge.headers['x-correlation-id'], 'corr-huge');
  });

  it('answers 503 HOST_ERR_SECRETS_NOT_CONFIGURED on a host without a RotationEngine', async () => {
    const bare = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
    try {
      for (const [method, url] of [['GET', '/v1/secrets/x/versions'], ['GET', '/v1/secrets/x/rotations'], ['POST', '/v1/secrets/x/rotate'], ['POST', '/v1/secrets/x/rollback']] as const) {
        const res = await bare.inject({ method, url });
        assert.equal(res.statusCode, 503, url);
        assert.equal(res.json<{ code: string; category: string }>().code, 'HOST_ERR_SECRETS_NOT_CONFIGURED');
        assert.equal(res.json<{ category: string }>().category, 'PermanentInfrastructure');
      }
    } finally {
      await bare.close();
    }
  });
});
