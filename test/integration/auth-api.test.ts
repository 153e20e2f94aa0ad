import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import Value from 'typebox/value';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { createApiServer } from '../../host/src/api/createApiServer.ts';
import { workerCommandExecutor } from '../../host/src/bus/commands/dispatchWorkerCommand.ts';
import { guardedCommandExecutor } from '../../host/src/bus/commands/guardedCommandExecutor.ts';
import type { CommandExecutor } from '../../host/src/bus/EventBus.ts';
import type { WorkerCommand } from '../../host/src/bus/commands/workerCommand.ts';
import type { AuditEntry, AuditSink } from '../../host/src/security/audit/AuditSink.ts';
import { AccessGuard, workerLookupFrom } from '../../host/src/security/authn/AccessGuard.ts';
import { OidcSettings } from '../../host/src/security/authn/authnSettings.ts';
import { hostPrincipal } from '../../host/src/security/authn/createAuthenticator.ts';
import { adminTokenPath, LocalAdminAuthenticator } from '../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { OidcAuthenticator } from '../../host/src/security/authn/OidcAuthenticator.ts';
import type { AuthzDecision, Authorizer, AuthzRequest } from '../../host/src/security/authz/Authorizer.ts';
import { startTestIdentityProvider, type TestIdentityProvider } from '../helpers/testIdentityProvider.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';

/**
 * A real, small authorizer answering by the rules of seed 000 table 12 (the Cedar adapter is tested on its own):
 * admins may do anything; creates need a matching tenant, 08:00-20:00 UTC and a cost of at most 10; reads need a
 * matching tenant; changes to a worker need its owner. A worker named `explode` makes evaluation fail.
 */
class RuleAuthorizer implements Authorizer {
  readonly adapter = 'rules';
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async authorize({ principal, action, resource, context }: AuthzRequest): Promise<AuthzDecision> {
    const allow = (policy: string): AuthzDecision => ({ decision: 'allow', policies: [policy], errors: [] });
    const deny: AuthzDecision = { decision: 'deny', policies: [], errors: [] };
    if (resource.id === 'explode') throw new Error('attribute resource.owner is missing');
    if (principal.roles.includes('admin')) return allow('admin');
    if (principal.source === 'host' && action === 'worker:read') return allow('host-read');
    const tenantOf = 'tenant' in resource ? resource.tenant : undefined;
    const sameTenant = context.tenant !== undefined && (tenantOf === undefined ? resource.id === '*' : tenantOf === context.tenant);
    if (action === 'worker:create') {
      return sameTenant && context.hourOfDay >= 8 && context.hourOfDay < 20 && (context.costEstimate ?? 0) <= 10 ? allow('create-window') : deny;
    }
    if (action === 'worker:read' || action === 'worker:logs' || action === 'plugin:read') return sameTenant || resource.type !== 'Worker' ? allow('tenant-read') : deny;
    const owner = resource.type === 'Worker' ? resource.owner : undefined;
    return sameTenant && owner === principal.id ? allow('owner') : deny;
  }
}

/** Keeps audit records in memory, in order. */
class MemoryAudit implements AuditSink {
  readonly entries: AuditEntry[] = [];
  async record(entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
  }
}

const SLEEP = { command: ['sleep', '600'] };
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const now = (): number => Math.floor(Date.now() / 1000);

function assertCode(res: LightMyRequestResponse, status: number, code: string, reason?: string): void {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json<{ code: string; details?: { reason?: string } }>();
  assert.equal(body.code, code);
  if (reason !== undefined) assert.equal(body.details?.reason, reason, res.body);
}

describe('authentication and authorization of the API and of bus commands (real tokens)', () => {
  let t: TestHost;
  let idp: TestIdentityProvider;
  let app: FastifyInstance;
  let guard: AccessGuard;
  const audit = new MemoryAudit();
  let clock = new Date('2030-01-01T12:00:00Z');
  const created: string[] = [];
  /** The bad tokens every channel must refuse, each with the reason it must give. */
  let badTokens: Array<{ name: string; header: string | undefined; reason: string }>;
  let operatorToken: string;
  let agentToken: string;

  before(async () => {
    t = await startTestHost(`
host: { id: auth-host, stateDir: \${DIR}/state, logLevel: warn }
${processProviderYaml()}`);
    idp = await startTestIdentityProvider();
    const settings = Value.Default(OidcSettings, { issuer: idp.issuer, audience: idp.audience, requiredScopes: ['wm:api'], allowInsecureHttp: true }) as OidcSettings;
    guard = new AccessGuard({
      authenticator: new OidcAuthenticator(settings), authorizer: new RuleAuthorizer(), audit, workers: workerLookupFrom(t.host.workers), logger: t.host.logger, now: () => clock,
    });
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, auth: { guard } });
    operatorToken = await idp.token('ci-operator');
    agentToken = await idp.token('ci-agent');
    badTokens = [
      { name: 'missing', header: undefined, reason: 'missing' },
      { name: 'malformed', header: 'Bearer not.a-jwt', reason: 'malformed' },
      { name: 'forged', header: `Bearer ${await idp.mint({}, { key: 'forged' })}`, reason: 'signature' },
      { name: 'expired', header: `Bearer ${await idp.mint({ iat: now() - 900, exp: now() - 300 })}`, reason: 'expired' },
      { name: 'not yet valid', header: `Bearer ${await idp.mint({ nbf: now() + 3_600 })}`, reason: 'not_yet_valid' },
      { name: 'wrong audience', header: `Bearer ${await idp.token('ci-operator', { resource: 'urn:other-api' })}`, reason: 'audience' },
      { name: 'wrong issuer', header: `Bearer ${await idp.mint({ iss: 'https://keycloak.example/realms/other' })}`, reason: 'issuer' },
      { name: 'missing scope', header: `Bearer ${await idp.token('ci-reader')}`, reason: 'scope' },
    ];
  });
  after(async () => {
    await app?.close();
    for (const id of created) await t.host.workers.terminateWorker(id).catch(() => undefined);
    await idp?.close();
    await t?.stop();
  });

  /** A worker as the worker service records it for a caller: tenant and owner in its labels. */
  const workerOf = async (id: string, tenant: string, owner: string): Promise<string> => {
    await t.host.workers.createWorker({ workerId: id, spec: SLEEP, tenant, owner });
    created.push(id);
    return id;
  };

  describe('over the API', () => {
    it('refuses every bad token with 401, its reason, a Bearer challenge, and never echoes the token', async () => {
      for (const bad of badTokens) {
        const res = await app.inject({ method: 'GET', url: '/v1/workers', headers: bad.header === undefined ? {} : { authorization: bad.header } });
        assertCode(res, 401, 'WM_ERR_AUTHENTICATION', bad.reason);
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="worker-manager"', bad.name);
        if (bad.header !== undefined) assert.ok(!res.body.includes(bad.header.slice(7)), `${bad.name}: the body holds no token`);
      }
      // A 401 comes before the body is looked at: an anonymous create with a bad body is still 401, not 400.
      assertCode(await app.inject({ method: 'POST', url: '/v1/workers', payload: { nonsense: true } }), 401, 'WM_ERR_AUTHENTICATION', 'missing');
    });

    it('keeps /healthz, /readyz, /version and /v1/openapi.json open, and hides unknown /v1 paths from anonymous callers', async () => {
      assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      assert.equal((await app.inject({ method: 'GET', url: '/version' })).statusCode, 200);
      assert.notEqual((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 401);
      assert.equal((await app.inject({ method: 'GET', url: '/v1/openapi.json' })).statusCode, 200);
      assertCode(await app.inject({ method: 'GET', url: '/v1/nowhere' }), 401, 'WM_ERR_AUTHENTICATION', 'missing');
      assertCode(await app.inject({ method: 'GET', url: '/v1/nowhere', headers: bearer(operatorToken) }), 404, 'WM_ERR_NOT_FOUND');
    });

    it('allows a create within the hours window and cost limit, and audits the decision', async () => {
      const res = await app.inject({ method: 'POST', url: '/v1/workers', headers: { ...bearer(operatorToken), 'x-correlation-id': 'corr-auth-1' }, payload: { workerId: 'auth-ok', spec: { ...SLEEP, resources: { memoryMiB: 512 } } } });
      assert.equal(res.statusCode, 202, res.body);
      created.push('auth-ok');
      assert.equal(res.headers['location'], '/v1/workers/auth-ok');
      const entry = audit.entries.find((e) => e.correlationId === 'corr-auth-1');
      assert.deepEqual(entry, {
        kind: 'authz.decision', principal: { id: 'ci-operator', kind: 'service', source: 'oidc', tenant: 'team-a' }, action: 'worker:create', resource: 'Worker::auth-ok',
        decision: 'allow', policies: ['create-window'], correlationId: 'corr-auth-1', details: { channel: 'api', authorizer: 'rules' },
      });
    });

    it('denies with 403 and a code: over the cost limit, outside the hours window, another tenant, not the owner', async () => {
      const before = audit.entries.length;
      const overCost = await app.inject({ method: 'POST', url: '/v1/workers', headers: bearer(operatorToken), payload: { workerId: 'auth-big', spec: { ...SLEEP, resources: { memoryMiB: 16_384 } } } });
      assertCode(overCost, 403, 'WM_ERR_AUTHORIZATION', 'denied');
      assert.equal(overCost.json<{ details: { action: string } }>().details.action, 'worker:create');
      clock = new Date('2030-01-01T22:00:00Z');
      try {
        assertCode(await app.inject({ method: 'POST', url: '/v1/workers', headers: bearer(operatorToken), payload: { workerId: 'auth-late', spec: SLEEP } }), 403, 'WM_ERR_AUTHORIZATION', 'denied');
      } finally {
        clock = new Date('2030-01-01T12:00:00Z');
      }
      const teamA = await workerOf('auth-a', 'team-a', 'ci-operator');
      assertCode(await app.inject({ method: 'GET', url: `/v1/workers/${teamA}`, headers: bearer(agentToken) }), 403, 'WM_ERR_AUTHORIZATION', 'denied');
      assert.equal((await app.inject({ method: 'GET', url: `/v1/workers/${teamA}`, headers: bearer(operatorToken) })).statusCode, 200);
      const teamB = await workerOf('auth-b', 'team-b', 'someone-else');
      assertCode(await app.inject({ method: 'DELETE', url: `/v1/workers/${teamB}`, headers: bearer(agentToken) }), 403, 'WM_ERR_AUTHORIZATION', 'denied');
      assert.equal((await t.host.workers.getStatus(teamB)).state.phase, 'Running', 'the denied terminate did nothing');
      const own = await workerOf('auth-own', 'team-b', 'ci-agent');
      assert.equal((await app.inject({ method: 'DELETE', url: `/v1/workers/${own}`, headers: bearer(agentToken) })).statusCode, 200);
      // Nothing was created for the denied creates, and each decision (4 denies, 2 allows) was audited.
      await assert.rejects(t.host.workers.getStatus('auth-big'), (err: WorkerManagerError) => err.code === 'WM_ERR_NOT_FOUND');
      const decisions = audit.entries.slice(before).map((e) => `${e.decision} ${e.action} ${e.resource}`);
      assert.deepEqual(decisions, [
        'deny worker:create Worker::auth-big', 'deny worker:create Worker::auth-late', 'deny worker:read Worker::auth-a', 'allow worker:read Worker::auth-a',
        'deny worker:terminate Worker::auth-b', 'allow worker:terminate Worker::auth-own',
      ]);
    });

    it('denies (fail closed) when the policy evaluation fails', async () => {
      const res = await app.inject({ method: 'GET', url: '/v1/workers/explode', headers: bearer(operatorToken) });
      assertCode(res, 403, 'WM_ERR_AUTHORIZATION', 'evaluation_error');
      assert.equal(audit.entries.at(-1)?.decision, 'deny');
    });
  });

  describe('over bus commands (the same guard)', () => {
    let executor: CommandExecutor;
    let serviceExecutor: CommandExecutor;
    let seq = 0;
    const command = (operation: WorkerCommand['operation'], params: Record<string, unknown>, token?: string, extra: Partial<WorkerCommand> = {}): WorkerCommand => ({
      operation, idempotencyKey: `auth-cmd-${(seq += 1)}`, params, ...(token === undefined ? {} : { auth: { token } }), ...extra,
    });
    const rejectsWith = (promise: Promise<unknown>, code: string, reason: string): Promise<void> => assert.rejects(promise, (err: unknown) => {
      assert.ok(err instanceof WorkerManagerError, String(err));
      assert.equal(err.code, code, err.message);
      assert.equal(err.details?.['reason'], reason, err.message);
      return true;
    });

    /** Commands as the worker command executor received them, after the guard. */
    const seen: WorkerCommand[] = [];
    before(() => {
      const inner = workerCommandExecutor(t.host.workers);
      const recording: CommandExecutor = {
        run: (c) => {
          seen.push(c);
          return inner.run(c);
        },
        recover: (c) => inner.recover(c),
      };
      executor = guardedCommandExecutor(recording, { guard });
      serviceExecutor = guardedCommandExecutor(workerCommandExecutor(t.host.workers), { guard, serviceIdentity: hostPrincipal({ commands: true, roles: ['wm-service'] }, 'auth-host') });
    });

    it('refuses every bad token with WM_ERR_AUTHENTICATION and its reason, in admit and in run', async () => {
      for (const bad of badTokens) {
        const token = bad.header?.slice('Bearer '.length);
        await rejectsWith(executor.run(command('list', {}, token)), 'WM_ERR_AUTHENTICATION', bad.reason);
        await rejectsWith(executor.admit?.(command('list', {}, token)) ?? Promise.reject(new Error('no admit')), 'WM_ERR_AUTHENTICATION', bad.reason);
      }
    });

    it('allows what policy allows and denies the rest with WM_ERR_AUTHORIZATION, audited on the bus channel', async () => {
      const result = (await executor.run(command('create', { workerId: 'auth-cmd-ok', spec: { ...SLEEP, resources: { memoryMiB: 256 } } }, operatorToken, { correlationId: 'corr-cmd-1', tenant: 'team-b' }))) as { worker: { workerId: string } };
      created.push('auth-cmd-ok');
      assert.equal(result.worker.workerId, 'auth-cmd-ok');
      assert.equal(audit.entries.find((e) => e.correlationId === 'corr-cmd-1')?.details?.['channel'], 'bus');
      const ran = seen.find((c) => c.correlationId === 'corr-cmd-1');
      assert.equal(ran?.tenant, 'team-a', 'the principal\'s tenant wins over the one the envelope claims');
      assert.equal(ran?.auth, undefined, 'the token does not travel further than the guard');

      await rejectsWith(executor.run(command('create', { workerId: 'auth-cmd-big', spec: { ...SLEEP, resources: { gpu: 2 } } }, operatorToken)), 'WM_ERR_AUTHORIZATION', 'denied');
      const other = await workerOf('auth-cmd-b', 'team-b', 'someone-else');
      await rejectsWith(executor.run(command('terminate', { workerId: other }, agentToken)), 'WM_ERR_AUTHORIZATION', 'denied');
      await rejectsWith(executor.run(command('status', { workerId: 'auth-cmd-ok' }, agentToken)), 'WM_ERR_AUTHORIZATION', 'denied');
      clock = new Date('2030-01-01T06:00:00Z');
      try {
        await rejectsWith(executor.run(command('create', { workerId: 'auth-cmd-early', spec: SLEEP }, operatorToken)), 'WM_ERR_AUTHORIZATION', 'denied');
      } finally {
        clock = new Date('2030-01-01T12:00:00Z');
      }
      const own = await workerOf('auth-cmd-own', 'team-b', 'ci-agent');
      const terminated = (await executor.run(command('terminate', { workerId: own }, agentToken))) as { alreadyGone: boolean };
      assert.equal(terminated.alreadyGone, false);
    });

    it('runs a token-less command as the host identity only when that is configured', async () => {
      await rejectsWith(executor.run(command('list', {})), 'WM_ERR_AUTHENTICATION', 'missing');
      const listed = (await serviceExecutor.run(command('list', {}, undefined, { correlationId: 'corr-cmd-host' }))) as unknown[];
      assert.ok(Array.isArray(listed));
      assert.deepEqual(audit.entries.find((e) => e.correlationId === 'corr-cmd-host')?.principal, { id: 'host:auth-host', kind: 'service', source: 'host' });
      // Still authorized: the host identity may read, not create.
      await rejectsWith(serviceExecutor.run(command('create', { spec: SLEEP })), 'WM_ERR_AUTHORIZATION', 'denied');
    });

    it('checks a command once, whether the bus admitted it first or not', async () => {
      const before = audit.entries.length;
      const cmd = command('list', {}, operatorToken);
      await executor.admit?.(cmd);
      await executor.run(cmd);
      assert.equal(audit.entries.length - before, 1);
    });
  });

  describe('with the local admin token (embedded default)', () => {
    it('accepts the token from <stateDir>/admin.token and refuses any other', async () => {
      const stateDir = path.join(t.dir, 'state');
      const local = new LocalAdminAuthenticator({ stateDir });
      await local.start();
      const localApp = createApiServer({
        workers: t.host.workers, registry: t.host.registry, logger: t.host.logger,
        auth: { guard: new AccessGuard({ authenticator: local, authorizer: new RuleAuthorizer(), audit }) },
      });
      try {
        const token = (await readFile(adminTokenPath(stateDir), 'utf8')).trim();
        // The token is random: change its last character to one it certainly is not, or one run in 64 would send the
        // real token back.
        assert.equal((await localApp.inject({ method: 'GET', url: '/v1/workers', headers: bearer(token) })).statusCode, 200);
        assertCode(await localApp.inject({ method: 'GET', url: '/v1/workers', headers: bearer(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`) }), 401, 'WM_ERR_AUTHENTICATION', 'invalid_token');
        assertCode(await localApp.inject({ method: 'GET', url: '/v1/workers', headers: bearer(operatorToken) }), 401, 'WM_ERR_AUTHENTICATION', 'invalid_token');
        assert.equal(audit.entries.at(-1)?.principal.id, 'local-admin');
      } finally {
        await localApp.close();
      }
    });

    it('leaves /metrics open by default and requires a token there with protectMetrics', async () => {
      const stateDir = path.join(t.dir, 'state-metrics');
      const local = new LocalAdminAuthenticator({ stateDir });
      await local.start();
      const guardOf = new AccessGuard({ authenticator: local, authorizer: new RuleAuthorizer() });
      const metrics = { contentType: 'text/plain; version=0.0.4', render: async () => 'wm_up 1\n' };
      const open = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, metrics, auth: { guard: guardOf } });
      const closed = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, metrics, auth: { guard: guardOf, protectMetrics: true } });
      try {
        assert.equal((await open.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
        assertCode(await closed.inject({ method: 'GET', url: '/metrics' }), 401, 'WM_ERR_AUTHENTICATION', 'missing');
        const token = (await readFile(adminTokenPath(stateDir), 'utf8')).trim();
        const res = await closed.inject({ method: 'GET', url: '/metrics', headers: bearer(token) });
        assert.equal(res.statusCode, 200);
        assert.equal(res.body, 'wm_up 1\n');
      } finally {
        await open.close();
        await closed.close();
      }
    });
  });
});
