// Each example policy of config/policies/examples (seed 000 table 12) alone in a policy set (guardrails beside a
// permit-all, so their forbids are what decides), checked for what it must allow and what it must deny.
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import type { AuthzContext, AuthzRequest } from '../../../host/src/security/authz/Authorizer.ts';
import { CedarAuthorizer } from '../../../host/src/security/authz/adapters/CedarAuthorizer.ts';
import { examplesDir, policyFolder, principal, request } from './authzFixtures.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const ALLOW_ALL = { 'allow-all.cedar': '@id("allow-all") permit (principal, action, resource);' };

async function engine(example: string, withAllowAll = false): Promise<CedarAuthorizer> {
  const dir = await policyFolder([`examples/${example}`, ...(withAllowAll ? [ALLOW_ALL] : [])]);
  dirs.push(dir);
  const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' });
  await authz.start();
  return authz;
}

/** Checks each case; the example's id must be the determining policy of its outcome (a permit's allows, a guardrail's denies). */
async function expect(authz: CedarAuthorizer, cases: Array<[string, AuthzRequest, 'allow' | 'deny']>, decidedBy: { policy: string; on: 'allow' | 'deny' }): Promise<void> {
  for (const [name, req, want] of cases) {
    const got = await authz.authorize(req);
    assert.deepEqual(got.errors, [], name);
    assert.equal(got.decision, want, name);
    if (want === decidedBy.on) assert.deepEqual(got.policies, [decidedBy.policy], name);
  }
}

describe('seed 000 table 12 example policies', () => {
  it('ships every example with an @id annotation', async () => {
    const files = (await readdir(examplesDir)).filter((f) => f.endsWith('.cedar'));
    assert.equal(files.length, 6);
    for (const file of files) {
      const authz = await engine(file);
      assert.equal(authz.adapter, 'cedar');
    }
  });

  it('create-worker-ci-operator: ServiceAccount ci-operator, namespace default, 08:00-20:00, cost <= 10', async () => {
    const authz = await engine('create-worker-ci-operator.cedar');
    const operator = principal({ kind: 'service', id: 'sa-op', clientId: 'ci-operator', tenant: 'a' });
    const create = (ctx: Partial<AuthzContext>, p = operator, namespace?: string): AuthzRequest =>
      request(p, 'worker:create', { type: 'Worker', id: 'w', tenant: 'a', ...(namespace === undefined ? {} : { namespace }) }, { costEstimate: 5, hourOfDay: 10, ...ctx });
    await expect(authz, [
      ['in hours, under the limit', create({}), 'allow'],
      ['namespace default named', create({}, operator, 'default'), 'allow'],
      ['first hour', create({ hourOfDay: 8 }), 'allow'],
      ['last hour', create({ hourOfDay: 19 }), 'allow'],
      ['exactly at the limit', create({ costEstimate: 10 }), 'allow'],
      ['before 08:00', create({ hourOfDay: 7 }), 'deny'],
      ['at 20:00', create({ hourOfDay: 20 }), 'deny'],
      ['over the limit', create({ costEstimate: 10.001 }), 'deny'],
      ['no cost estimate', request(operator, 'worker:create', { type: 'Worker', id: 'w' }, { hourOfDay: 10 }), 'deny'],
      ['another namespace', create({}, operator, 'prod'), 'deny'],
      ['another client', create({}, principal({ kind: 'service', id: 'sa-x', clientId: 'ci-app' })), 'deny'],
      ['a user, not a service account', create({}, principal({ clientId: 'ci-operator' })), 'deny'],
      ['not a create', request(operator, 'worker:terminate', { type: 'Worker', id: 'w' }, { costEstimate: 1 }), 'deny'],
    ], { policy: 'create-worker-ci-operator', on: 'allow' });
  });

  it('create-worker-business-hours: no create outside 08:00-20:00 whatever permits it', async () => {
    const authz = await engine('business-hours.cedar', true);
    const p = principal({ tenant: 'a' });
    const at = (hourOfDay: number, action: 'worker:create' | 'worker:read' = 'worker:create') => request(p, action, { type: 'Worker', id: 'w' }, { hourOfDay });
    await expect(authz, [
      ['08:00', at(8), 'allow'],
      ['19:59', at(19), 'allow'],
      ['20:00', at(20), 'deny'],
      ['03:00', at(3), 'deny'],
      ['07:00', at(7), 'deny'],
      ['a read at 03:00 is not a create', at(3, 'worker:read'), 'allow'],
    ], { policy: 'create-worker-business-hours', on: 'deny' });
  });

  it('create-worker-cost-limit: no create over 10 cost units, nor of unknown cost', async () => {
    const authz = await engine('cost-limit.cedar', true);
    const p = principal({ tenant: 'a' });
    const costing = (costEstimate?: number) => request(p, 'worker:create', { type: 'Worker', id: 'w' }, costEstimate === undefined ? {} : { costEstimate });
    await expect(authz, [
      ['free', costing(0), 'allow'],
      ['2 cores + 4 GiB', costing(6), 'allow'],
      ['exactly 10', costing(10), 'allow'],
      ['10.0001', costing(10.0001), 'deny'],
      ['one GPU and a core', costing(11), 'deny'],
      ['unknown cost', costing(undefined), 'deny'],
      ['a terminate costs nothing', request(p, 'worker:terminate', { type: 'Worker', id: 'w' }), 'allow'],
    ], { policy: 'create-worker-cost-limit', on: 'deny' });
  });

  it('terminate-own-worker: a service account terminates the workers it owns (owner == subject)', async () => {
    const authz = await engine('terminate-own-worker.cedar');
    const agent = principal({ kind: 'service', id: 'sa-agent', clientId: 'ci-agent' });
    const worker = (owner?: string) => ({ type: 'Worker' as const, id: 'w', ...(owner === undefined ? {} : { owner }) });
    await expect(authz, [
      ['own worker', request(agent, 'worker:terminate', worker('sa-agent')), 'allow'],
      ['somebody else\'s worker', request(agent, 'worker:terminate', worker('sa-other')), 'deny'],
      ['worker without owner', request(agent, 'worker:terminate', worker()), 'deny'],
      ['a user owning it', request(principal({ id: 'sa-agent' }), 'worker:terminate', worker('sa-agent')), 'deny'],
      ['exec is not terminate', request(agent, 'worker:exec', worker('sa-agent')), 'deny'],
    ], { policy: 'terminate-own-worker', on: 'allow' });
  });

  it('read-secret-same-tenant: read only, tenant == subject.tenant', async () => {
    const authz = await engine('read-secret-same-tenant.cedar');
    const app = principal({ kind: 'service', id: 'sa-app', clientId: 'ci-app', tenant: 'a' });
    const secret = (tenant?: string) => ({ type: 'Secret' as const, id: 'vault/db', ...(tenant === undefined ? {} : { tenant }) });
    await expect(authz, [
      ['same tenant', request(app, 'secret:read', secret('a')), 'allow'],
      ['other tenant', request(app, 'secret:read', secret('b')), 'deny'],
      ['secret of unknown tenant', request(app, 'secret:read', secret()), 'deny'],
      ['principal without tenant', request(principal({ kind: 'service', id: 'sa-app' }), 'secret:read', secret('a')), 'deny'],
      ['rotate is not read', request(app, 'secret:rotate', secret('a')), 'deny'],
      ['rollback is not read', request(app, 'secret:rollback', secret('a')), 'deny'],
    ], { policy: 'read-secret-same-tenant', on: 'allow' });
  });

  it('rotate-secret-security-admin: role == security_admin', async () => {
    const authz = await engine('rotate-secret-security-admin.cedar');
    const operator = principal({ kind: 'service', id: 'sa-sec', clientId: 'security-operator', roles: ['security_admin'] });
    const secret = { type: 'Secret' as const, id: 'vault/db' };
    await expect(authz, [
      ['rotate', request(operator, 'secret:rotate', secret), 'allow'],
      ['rollback', request(operator, 'secret:rollback', secret), 'allow'],
      ['a user with the role', request(principal({ roles: ['dev', 'security_admin'] }), 'secret:rotate', secret), 'allow'],
      ['without the role', request(principal({ kind: 'service', id: 'sa-x', roles: ['dev'] }), 'secret:rotate', secret), 'deny'],
      ['a client role of the same name', request(principal({ roles: ['wm:security_admin'] }), 'secret:rotate', secret), 'deny'],
      ['read is not rotate', request(operator, 'secret:read', secret), 'deny'],
    ], { policy: 'rotate-secret-security-admin', on: 'allow' });
  });
});
