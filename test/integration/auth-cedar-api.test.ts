// The 401/403 matrix of the API end to end: a real host, real tokens from the test identity provider, and the real
// embedded Cedar engine deciding with the shipped schema, the default policies and the seed 000 table 12 examples.
// (auth-api.test.ts covers the same matrix with a rule-based authorizer; authz-examples.test.ts the examples alone.)
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { AuditLog } from '../../host/src/security/audit/AuditLog.ts';
import type { AuditRecord } from '../../host/src/security/audit/auditRecord.ts';
import { verifyAuditLog } from '../../host/src/security/audit/verifyAuditLog.ts';
import { examplesDir, policyFolder } from '../host/security/authzFixtures.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { startTestIdentityProvider, type TestIdentityProvider } from '../helpers/testIdentityProvider.ts';
import { budget } from '../helpers/waitFor.ts';

const SLEEP = { command: ['sleep', '600'] };
/** A create answered once the worker runs (201), with a wait the API accepts (at most 600 s). */
const WAIT_RUNNING = `/v1/workers?wait=running&waitTimeoutMs=${Math.min(budget(60_000), 600_000)}`;
/** 0.5 cost units (one per GiB): within the cost-limit example's 10. */
const SMALL = { memoryMiB: 512 };
/** 16 cost units: over it. */
const BIG = { memoryMiB: 16_384 };
const now = (): number => Math.floor(Date.now() / 1000);

/** The business-hours example with its 08:00-20:00 window replaced, so the test does not depend on the clock. */
async function hoursWindow(from: number, to: number): Promise<Record<string, string>> {
  const shipped = await readFile(path.join(examplesDir, 'business-hours.cedar'), 'utf8');
  const window = 'context.hourOfDay >= 8 && context.hourOfDay < 20';
  assert.ok(shipped.includes(window), 'the business-hours example still has its 08:00-20:00 window');
  return { 'business-hours.cedar': shipped.replace(window, `context.hourOfDay >= ${from} && context.hourOfDay < ${to}`) };
}

/** A decision the test expects in the audit log, found there by the correlation id of its request. */
interface Expected {
  correlationId: string;
  principal: string;
  action: string;
  resource: string;
  decision: 'allow' | 'deny';
  policies: string[];
}

/** A real host with the API on loopback, OIDC against the test realm and Cedar over `policiesDir`. */
function hostYaml(id: string, idp: TestIdentityProvider, policiesDir: string): string {
  return `
host: { id: ${id}, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
security:
  authentication:
    mode: oidc
    oidc: { issuer: "${idp.issuer}", audience: ${idp.audience}, requiredScopes: [wm:api], allowInsecureHttp: true }
  authorization:
    adapter: cedar
    cedar: { policiesDir: "${policiesDir}" }
${processProviderYaml()}`;
}

/** Calls the API of `t` over HTTP and remembers what each authorized request must have left in the audit log. */
class Caller {
  readonly t: TestHost;
  readonly expected: Expected[] = [];
  readonly workers: string[] = [];
  #seq = 0;

  constructor(t: TestHost) {
    this.t = t;
  }

  async call(method: string, url: string, options: { token?: string; authorization?: string; body?: unknown; correlationId?: string } = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const headers: Record<string, string> = { 'x-correlation-id': options.correlationId ?? `${this.t.host.hostId}-${(this.#seq += 1)}` };
    const authorization = options.authorization ?? (options.token === undefined ? undefined : `Bearer ${options.token}`);
    if (authorization !== undefined) headers['authorization'] = authorization;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.t.host.apiUrl ?? assert.fail('the API is not listening')}${url}`, {
      method, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text.length === 0 ? {} : (JSON.parse(text) as Record<string, unknown>), headers: res.headers };
  }

  /** A request that must be authorized with `decision`, decided by exactly `policies`. */
  async decided(
    decision: 'allow' | 'deny', policies: string[], who: { token: string; id: string }, method: string, url: string, action: string, resource: string, body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const correlationId = `${this.t.host.hostId}-${action}-${(this.#seq += 1)}`;
    // Cleaned up even when it should have been denied, so a failing assertion leaves no process behind.
    const workerId = (body as { workerId?: unknown } | undefined)?.workerId;
    if (typeof workerId === 'string') this.workers.push(workerId);
    const res = await this.call(method, url, { token: who.token, correlationId, ...(body === undefined ? {} : { body }) });
    if (decision === 'allow') {
      assert.ok(res.status >= 200 && res.status < 300, `${method} ${url} by ${who.id}: ${res.status} ${JSON.stringify(res.body)}`);
    } else {
      assert.equal(res.status, 403, `${method} ${url} by ${who.id}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body['code'], 'WM_ERR_AUTHORIZATION');
      assert.equal(res.body['correlationId'], correlationId);
      assert.deepEqual(res.body['details'], { reason: 'denied', action, resource, policies });
    }
    this.expected.push({ correlationId, principal: who.id, action, resource, decision, policies });
    return res;
  }

  /** The audit log of the host: chain intact, and exactly one record per authorized request, as expected. */
  async checkAudit(): Promise<AuditRecord[]> {
    const { audit } = this.t.host;
    assert.ok(audit instanceof AuditLog, 'the host writes the audit log in its state dir');
    assert.equal(audit.file, path.join(this.t.dir, 'state', 'audit', 'audit.log'));
    const verified = await verifyAuditLog(audit.file);
    assert.equal(verified.ok, true, JSON.stringify(verified));
    const records = (await readFile(audit.file, 'utf8')).split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as AuditRecord);
    assert.equal(verified.ok && verified.records, records.length);
    for (const want of this.expected) {
      const got = records.filter((r) => r.correlationId === want.correlationId);
      assert.equal(got.length, 1, `one record for ${want.correlationId}`);
      const [record] = got;
      assert.deepEqual(
        { principal: record?.principal.id, source: record?.principal.source, kind: record?.kind, action: record?.action, resource: record?.resource, decision: record?.decision, policies: record?.policies, details: record?.details },
        { principal: want.principal, source: 'oidc', kind: 'authz.decision', action: want.action, resource: want.resource, decision: want.decision, policies: want.policies, details: { channel: 'api', authorizer: 'cedar' } },
        want.correlationId,
      );
    }
    return records;
  }

  async cleanup(): Promise<void> {
    for (const id of this.workers) await this.t.host.workers.terminateWorker(id, { gracePeriodMs: 0 }).catch(() => undefined);
  }
}

describe('the API authorized by the embedded Cedar engine (real host, real tokens, shipped policies)', () => {
  let idp: TestIdentityProvider;
  const dirs: string[] = [];
  let operator: { token: string; id: string };
  let agent: { token: string; id: string };

  before(async () => {
    idp = await startTestIdentityProvider();
    const operatorToken = await idp.token('ci-operator');
    const agentToken = await idp.token('ci-agent');
    operator = { token: operatorToken, id: decodeJwt(operatorToken).sub ?? assert.fail('no sub') };
    agent = { token: agentToken, id: decodeJwt(agentToken).sub ?? assert.fail('no sub') };
    // The realm's clients: ci-operator in team-a, ci-agent in team-b (testIdentityProvider DEFAULT_CLIENTS).
    assert.equal(decodeJwt(operatorToken)['tenant'], 'team-a');
    assert.equal(decodeJwt(agentToken)['tenant'], 'team-b');
  });
  after(async () => {
    await idp?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  describe('default policies (administrators, tenants) with the cost-limit guardrail and an hours window open all day', () => {
    let t: TestHost;
    let api: Caller;

    before(async () => {
      const dir = await policyFolder(['administrators.cedar', 'tenants.cedar', 'examples/cost-limit.cedar', await hoursWindow(0, 24)]);
      dirs.push(dir);
      t = await startTestHost(hostYaml('cedar-tenants', idp, dir));
      api = new Caller(t);
    });
    after(async () => {
      await api?.cleanup();
      await t?.stop();
    });

    it('boots with the Cedar adapter, the API on loopback and no local admin token', () => {
      assert.equal(t.host.authorizer.adapter, 'cedar');
      assert.match(t.host.apiUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(t.host.adminTokenFile, undefined);
    });

    it('refuses missing, malformed, forged, expired, not yet valid, wrong-issuer, wrong-audience and missing-scope tokens with 401 and the reason, before any decision', async () => {
      const audit = t.host.audit;
      assert.ok(audit instanceof AuditLog);
      const seqBefore = audit.lastSeq;
      const cases: Array<[string, string | undefined, string]> = [
        ['missing', undefined, 'missing'],
        ['malformed', 'Bearer not.a-jwt', 'malformed'],
        ['forged', `Bearer ${await idp.mint({}, { key: 'forged' })}`, 'signature'],
        ['expired', `Bearer ${await idp.mint({ iat: now() - 900, exp: now() - 300 })}`, 'expired'],
        ['not yet valid', `Bearer ${await idp.mint({ nbf: now() + 3_600 })}`, 'not_yet_valid'],
        ['wrong issuer', `Bearer ${await idp.mint({ iss: 'https://keycloak.example/realms/other' })}`, 'issuer'],
        ['wrong audience', `Bearer ${await idp.token('ci-operator', { resource: 'urn:other-api' })}`, 'audience'],
        ['missing scope', `Bearer ${await idp.token('ci-reader')}`, 'scope'],
      ];
      for (const [name, authorization, reason] of cases) {
        for (const [method, url, body] of [['GET', '/v1/workers/any'], ['POST', '/v1/workers', { workerId: 'never', spec: { ...SLEEP, resources: SMALL } }]] as const) {
          const res = await api.call(method, url, { ...(authorization === undefined ? {} : { authorization }), ...(body === undefined ? {} : { body }) });
          assert.equal(res.status, 401, `${name} ${method}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body['code'], 'WM_ERR_AUTHENTICATION', name);
          assert.equal((res.body['details'] as { reason?: unknown } | undefined)?.reason, reason, name);
          assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="worker-manager"', name);
          if (authorization !== undefined) assert.ok(!JSON.stringify(res.body).includes(authorization.slice('Bearer '.length)), `${name}: the body holds no token`);
        }
      }
      assert.equal(audit.lastSeq, seqBefore, 'an unauthenticated request reaches no authorization decision');
      await assert.rejects(t.host.workers.getStatus('never'), { code: 'WM_ERR_NOT_FOUND' });
    });

    it('allows a create within the cost limit and denies one over it or with no declared resources (create-worker-cost-limit)', async () => {
      // Waited for until it runs (201): the next test reads and terminates it as a running worker.
      const created = await api.decided('allow', ['tenant-workers'], operator, 'POST', WAIT_RUNNING, 'worker:create', 'Worker::cedar-a1', { workerId: 'cedar-a1', spec: { ...SLEEP, resources: SMALL } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body['phase'], 'Running');
      assert.equal((created.body['record'] as { labels?: Record<string, string> } | undefined)?.labels?.['wm.tenant'], 'team-a');
      assert.equal((created.body['record'] as { labels?: Record<string, string> } | undefined)?.labels?.['wm.owner'], operator.id);

      await api.decided('deny', ['create-worker-cost-limit'], operator, 'POST', '/v1/workers', 'worker:create', 'Worker::cedar-big', { workerId: 'cedar-big', spec: { ...SLEEP, resources: BIG } });
      await api.decided('deny', ['create-worker-cost-limit'], operator, 'POST', '/v1/workers', 'worker:create', 'Worker::cedar-gpu', { workerId: 'cedar-gpu', spec: { ...SLEEP, resources: { gpu: 2 } } });
      // No resources: the cost cannot be checked, so the guardrail forbids it too.
      await api.decided('deny', ['create-worker-cost-limit'], operator, 'POST', '/v1/workers', 'worker:create', 'Worker::cedar-free', { workerId: 'cedar-free', spec: SLEEP });
      for (const id of ['cedar-big', 'cedar-gpu', 'cedar-free']) await assert.rejects(t.host.workers.getStatus(id), { code: 'WM_ERR_NOT_FOUND' }, `${id} was not created`);
      // The other tenant creates within its own tenant just as well.
      const b1 = await api.decided('allow', ['tenant-workers'], agent, 'POST', WAIT_RUNNING, 'worker:create', 'Worker::cedar-b1', { workerId: 'cedar-b1', spec: { ...SLEEP, resources: { memoryMiB: 256 } } });
      assert.equal(b1.status, 201, JSON.stringify(b1.body));
    });

    it('lets a tenant read and terminate its own workers, and denies another tenant both (tenant-workers matches no permit)', async () => {
      const state = await api.decided('allow', ['tenant-workers'], operator, 'GET', '/v1/workers/cedar-a1', 'worker:read', 'Worker::cedar-a1');
      assert.equal((state.body['state'] as { phase?: string }).phase, 'Running');
      await api.decided('deny', [], agent, 'GET', '/v1/workers/cedar-a1', 'worker:read', 'Worker::cedar-a1');
      await api.decided('deny', [], agent, 'DELETE', '/v1/workers/cedar-a1', 'worker:terminate', 'Worker::cedar-a1');
      await api.decided('deny', [], operator, 'DELETE', '/v1/workers/cedar-b1', 'worker:terminate', 'Worker::cedar-b1');
      assert.equal((await t.host.workers.getStatus('cedar-a1')).state.phase, 'Running', 'the denied terminate did nothing');
      assert.equal((await t.host.workers.getStatus('cedar-b1')).state.phase, 'Running', 'the denied terminate did nothing');
      const gone = await api.decided('allow', ['tenant-workers'], agent, 'DELETE', '/v1/workers/cedar-b1?gracePeriodMs=0', 'worker:terminate', 'Worker::cedar-b1');
      assert.equal(gone.body['alreadyGone'], false);
    });

    it("lets each tenant list workers and shows it only its own (the listing is scoped to the caller's tenant)", async () => {
      await api.decided('allow', ['tenant-workers'], agent, 'POST', '/v1/workers', 'worker:create', 'Worker::cedar-b2', { workerId: 'cedar-b2', spec: { ...SLEEP, resources: { memoryMiB: 256 } } });
      const ids = (res: { body: Record<string, unknown> }): string[] => (res.body['items'] as Array<{ worker: { workerId: string } }>).map((i) => i.worker.workerId).sort();
      const mine = await api.decided('allow', ['tenant-workers'], operator, 'GET', '/v1/workers', 'worker:read', 'Worker::*');
      assert.deepEqual(ids(mine), ['cedar-a1']);
      const theirs = await api.decided('allow', ['tenant-workers'], agent, 'GET', '/v1/workers', 'worker:read', 'Worker::*');
      // cedar-b1 was terminated above; the process provider still lists it (Terminated) to its tenant.
      assert.deepEqual(ids(theirs), ['cedar-b1', 'cedar-b2']);
    });

    it('records every decision, allow and deny with the deciding policies, in a hash chain verifyAuditLog accepts', async () => {
      const records = await api.checkAudit();
      assert.ok(api.expected.length >= 10);
      const decisions = records.filter((r) => r.kind === 'authz.decision');
      assert.ok(decisions.some((r) => r.decision === 'allow' && r.policies?.includes('tenant-workers')));
      assert.ok(decisions.some((r) => r.decision === 'deny' && r.policies?.includes('create-worker-cost-limit')));
      // The decisions went out on the bus too, each carrying its record's seq and hash.
      const denied = t.events.filter((e) => e.type.endsWith('security.auth.denied'));
      assert.ok(denied.length >= 6, `denied events: ${denied.length}`);
    });
  });

  describe('the owner example as the only terminate permit, and an hours window closed all day', () => {
    let t: TestHost;
    let api: Caller;

    before(async () => {
      const dir = await policyFolder(['administrators.cedar', 'examples/terminate-own-worker.cedar', 'examples/cost-limit.cedar', 'examples/create-worker-ci-operator.cedar', await hoursWindow(0, 0)]);
      dirs.push(dir);
      t = await startTestHost(hostYaml('cedar-owner', idp, dir));
      api = new Caller(t);
    });
    after(async () => {
      await api?.cleanup();
      await t?.stop();
    });

    it('denies a create within the cost limit outside the hours window, whatever permits it (create-worker-business-hours)', async () => {
      await api.decided('deny', ['create-worker-business-hours'], operator, 'POST', '/v1/workers', 'worker:create', 'Worker::cedar-late', { workerId: 'cedar-late', spec: { ...SLEEP, resources: SMALL } });
      await assert.rejects(t.host.workers.getStatus('cedar-late'), { code: 'WM_ERR_NOT_FOUND' });
    });

    it('lets a service account terminate the worker it owns and denies it one it does not own (terminate-own-worker)', async () => {
      // Created by the worker service as a create by each principal would be: tenant and owner in the labels.
      await t.host.workers.createWorker({ workerId: 'cedar-own', spec: SLEEP, tenant: 'team-b', owner: agent.id });
      api.workers.push('cedar-own');
      await t.host.workers.createWorker({ workerId: 'cedar-other', spec: SLEEP, tenant: 'team-b', owner: 'someone-else' });
      api.workers.push('cedar-other');
      await api.decided('deny', [], agent, 'DELETE', '/v1/workers/cedar-other', 'worker:terminate', 'Worker::cedar-other');
      assert.equal((await t.host.workers.getStatus('cedar-other')).state.phase, 'Running', 'the denied terminate did nothing');
      await api.decided('deny', [], operator, 'DELETE', '/v1/workers/cedar-own', 'worker:terminate', 'Worker::cedar-own');
      const gone = await api.decided('allow', ['terminate-own-worker'], agent, 'DELETE', '/v1/workers/cedar-own?gracePeriodMs=0', 'worker:terminate', 'Worker::cedar-own');
      assert.equal(gone.body['alreadyGone'], false);
      // Owning a worker is not reading it: no policy of this set permits worker:read.
      await api.decided('deny', [], agent, 'GET', '/v1/workers/cedar-other', 'worker:read', 'Worker::cedar-other');
    });

    it('records these decisions too, with the deciding policies, in a chain verifyAuditLog accepts', async () => {
      const records = await api.checkAudit();
      assert.ok(records.some((r) => r.decision === 'allow' && r.policies?.includes('terminate-own-worker')));
      assert.ok(records.some((r) => r.decision === 'deny' && r.policies?.includes('create-worker-business-hours')));
    });
  });
});
