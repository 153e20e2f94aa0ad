import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { ACTIONS, type Action, type AuthzResource } from '../../../host/src/security/authz/Authorizer.ts';
import { CedarAuthorizer, DECISION_CACHE_SIZE } from '../../../host/src/security/authz/adapters/CedarAuthorizer.ts';
import { createAuthorizer } from '../../../host/src/security/authz/createAuthorizer.ts';
import { policiesDir, policyFolder, principal, request } from './authzFixtures.ts';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function folder(files: Array<string | Record<string, string>>): Promise<string> {
  const dir = await policyFolder(files);
  dirs.push(dir);
  return dir;
}
async function started(dir: string): Promise<CedarAuthorizer> {
  const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' });
  await authz.start();
  return authz;
}
async function startError(dir: string): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' });
  const error = await authz.start().then(() => undefined, (e: unknown) => e);
  assert.ok(isWorkerManagerError(error), `start should fail with a coded error, got ${String(error)}`);
  return error;
}

/** A resource of the type each action applies to (schema.cedarschema). */
function resourceFor(action: Action, attrs: Record<string, string> = {}): AuthzResource {
  if (action.startsWith('worker:')) return { type: 'Worker', id: 'w-1', ...attrs };
  if (action.startsWith('secret:')) return { type: 'Secret', id: 'vault/db', ...attrs };
  if (action === 'event:read') return { type: 'Host', id: 'events' };
  return { type: 'Plugin', id: 'docker' };
}

describe('CedarAuthorizer with the shipped default policies', () => {
  const authz = createAuthorizer({ adapter: 'cedar', cedar: { schemaFile: 'schema.cedarschema' } }, { configDir: '/nonexistent' });
  const alice = principal({ tenant: 'a' });

  it('lets the local admin do every action', async () => {
    await authz.start();
    assert.equal(authz.adapter, 'cedar');
    const admin = principal({ id: 'local-admin', roles: ['admin'], source: 'local-admin' });
    for (const action of ACTIONS) {
      const decision = await authz.authorize(request(admin, action, resourceFor(action)));
      assert.equal(decision.decision, 'allow', action);
      assert.ok(decision.policies.includes('local-admin'), action);
      assert.deepEqual(decision.errors, [], action);
    }
  });

  it('does not treat an OIDC subject named local-admin as the local admin', async () => {
    const spoof = principal({ id: 'local-admin', roles: ['admin'] });
    const decision = await authz.authorize(request(spoof, 'worker:terminate', resourceFor('worker:terminate', { tenant: 'b' })));
    assert.equal(decision.decision, 'deny');
  });

  it('lets the host identity act', async () => {
    const host = principal({ kind: 'service', id: 'host:h1', source: 'host' });
    assert.deepEqual(await authz.authorize(request(host, 'secret:rotate', resourceFor('secret:rotate'))), { decision: 'allow', policies: ['host-identity'], errors: [] });
  });

  it('allows worker actions within the tenant only', async () => {
    for (const action of ACTIONS.filter((a) => a.startsWith('worker:'))) {
      assert.equal((await authz.authorize(request(alice, action, resourceFor(action, { tenant: 'a' })))).decision, 'allow', action);
      assert.equal((await authz.authorize(request(alice, action, resourceFor(action, { tenant: 'b' })))).decision, 'deny', action);
      assert.equal((await authz.authorize(request(alice, action, resourceFor(action)))).decision, 'deny', `${action} on a worker of unknown tenant`);
      assert.equal((await authz.authorize(request(principal(), action, resourceFor(action, { tenant: 'a' })))).decision, 'deny', `${action} by a principal without tenant`);
    }
  });

  it('lets anyone read secrets of their tenant, and only security_admin rotate or roll back', async () => {
    const secret = resourceFor('secret:read', { tenant: 'a' });
    assert.equal((await authz.authorize(request(alice, 'secret:read', secret))).decision, 'allow');
    assert.equal((await authz.authorize(request(alice, 'secret:read', resourceFor('secret:read', { tenant: 'b' })))).decision, 'deny');
    assert.equal((await authz.authorize(request(alice, 'secret:rotate', secret))).decision, 'deny');
    const admin = principal({ tenant: 'a', roles: ['security_admin'] });
    for (const action of ['secret:rotate', 'secret:rollback'] as const) {
      assert.deepEqual(await authz.authorize(request(admin, action, secret)), { decision: 'allow', policies: ['security-admin-rotation'], errors: [] });
      assert.equal((await authz.authorize(request(admin, action, resourceFor(action, { tenant: 'b' })))).decision, 'deny', `${action} in another tenant`);
    }
  });

  it('lets any principal read plugins and providers, but not the event stream', async () => {
    assert.equal((await authz.authorize(request(principal(), 'plugin:read', { type: 'Plugin', id: '*' }))).decision, 'allow');
    assert.equal((await authz.authorize(request(principal(), 'plugin:read', { type: 'Provider', id: 'local' }))).decision, 'allow');
    assert.equal((await authz.authorize(request(alice, 'event:read', { type: 'Host', id: 'events' }))).decision, 'deny');
  });

  it('denies, with the reason, a request outside the schema or the context types', async () => {
    const wrongType = await authz.authorize(request(alice, 'worker:read', { type: 'Secret', id: 's', tenant: 'a' }));
    assert.equal(wrongType.decision, 'deny');
    assert.match(wrongType.errors.join(), /schema/);
    for (const context of [{ hourOfDay: 24 }, { hourOfDay: 1.5 }, { costEstimate: Number.NaN }, { requested: { gpu: -1 } }]) {
      const d = await authz.authorize(request(principal({ id: 'local-admin', source: 'local-admin' }), 'worker:create', resourceFor('worker:create'), context));
      assert.equal(d.decision, 'deny', JSON.stringify(context));
      assert.match(d.errors.join(), /context\./);
    }
  });

  after(() => authz.stop());
});

describe('CedarAuthorizer remembers decisions by the exact request', () => {
  it('answers a repeat from memory, and any changed input (hour, tenant, cost) from the engine', async () => {
    const authz = await started(await folder(['administrators.cedar', 'tenants.cedar', 'examples/business-hours.cedar', 'examples/cost-limit.cedar']));
    const ops = principal({ tenant: 'a', roles: ['ci_operator'] });
    const create = (p = ops, context: Parameters<typeof request>[3] = {}) => request(p, 'worker:create', { type: 'Worker', id: '*', tenant: 'a' }, { tenant: p.tenant ?? '', costEstimate: 1, ...context });
    const first = await authz.authorize(create());
    assert.equal(first.decision, 'allow');
    const again = await authz.authorize(create());
    assert.equal(again, first, 'a repeat is answered with the remembered decision');
    assert.ok(Object.isFrozen(again) && Object.isFrozen(again.policies), 'a shared decision cannot be changed by one caller for the next');
    // Each changed input reaches the engine, which decides again: none may be served the remembered allow.
    assert.equal((await authz.authorize(create(ops, { hourOfDay: 22 }))).decision, 'deny', 'outside the hours window');
    assert.equal((await authz.authorize(create(principal({ tenant: 'b', roles: ['ci_operator'] })))).decision, 'deny', 'another tenant');
    assert.equal((await authz.authorize(create(ops, { requested: { cpuMillicores: 64_000 }, costEstimate: 64 }))).decision, 'deny', 'over the cost limit');
    assert.equal((await authz.authorize(create())).decision, 'allow');
    await authz.stop();
  });

  it('keeps at most decisionCacheSize decisions (1024 by default), dropping the least recently used; 0 keeps none', async () => {
    const dir = await folder(['administrators.cedar']);
    const admin = principal({ id: 'local-admin', source: 'local-admin' });
    const read = (i: number) => request(admin, 'worker:read', { type: 'Worker', id: `w-${i}` });
    const lru = async (size: number | undefined): Promise<void> => {
      const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema', ...(size === undefined ? {} : { decisionCacheSize: size }) });
      await authz.start();
      const capacity = size ?? DECISION_CACHE_SIZE;
      const made = [];
      for (let i = 0; i < capacity; i++) made.push(await authz.authorize(read(i)));
      // Full, nothing dropped yet; using the oldest makes the second the least recently used.
      assert.equal(await authz.authorize(read(0)), made[0], `size ${capacity}: dropped before it was full`);
      await authz.authorize(read(capacity));
      assert.equal(await authz.authorize(read(0)), made[0], `size ${capacity}: dropped a recently used decision`);
      const again = await authz.authorize(read(1));
      assert.notEqual(again, made[1], `size ${capacity}: the least recently used decision was kept past the size`);
      assert.deepEqual(again, made[1]);
      await authz.stop();
    };
    await lru(8);
    await lru(undefined);
    const off = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema', decisionCacheSize: 0 });
    await off.start();
    assert.notEqual(await off.authorize(read(0)), await off.authorize(read(0)));
    await off.stop();
  });

  it('does not remember a decision whose evaluation failed, so every such request is logged', async () => {
    const dir = await folder([{
      'all.cedar': '@id("allow-all") permit (principal, action, resource);',
      'overflow.cedar': '@id("gpu-overflow")\nforbid (principal, action, resource) when { context has requested && context.requested has gpu && context.requested.gpu * 4611686018427387904 > 0 };',
    }]);
    const logs: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => { logs.push(chunk.toString()); done(); } }));
    const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' }, { logger });
    await authz.start();
    const failing = () => authz.authorize(request(principal(), 'worker:create', resourceFor('worker:create'), { requested: { gpu: 4 } }));
    const a = await failing();
    const b = await failing();
    assert.equal(a.decision, 'deny');
    assert.notEqual(a, b);
    assert.equal(logs.filter((l) => l.includes('authorization denied: evaluation failed')).length, 2);
    await authz.stop();
  });
});

describe('CedarAuthorizer fails closed', () => {
  it('denies when a policy errors at evaluation, even an erroring forbid beside a permit', async () => {
    const dir = await folder([{
      'all.cedar': '@id("allow-all") permit (principal, action, resource);',
      'overflow.cedar': [
        '@id("gpu-overflow")',
        'forbid (principal, action == WorkerManager::Action::"worker:create", resource)',
        'when { context has requested && context.requested has gpu && context.requested.gpu * 4611686018427387904 > 0 };',
      ].join('\n'),
    }]);
    const logs: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _e, done) => { logs.push(chunk.toString()); done(); } }));
    const authz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' }, { logger });
    await authz.start();
    const fine = await authz.authorize(request(principal(), 'worker:create', resourceFor('worker:create'), { requested: { gpu: 0 } }));
    assert.deepEqual(fine, { decision: 'allow', policies: ['allow-all'], errors: [] });
    const failing = await authz.authorize(request(principal(), 'worker:create', resourceFor('worker:create'), { requested: { gpu: 4 } }));
    assert.equal(failing.decision, 'deny');
    assert.deepEqual(failing.policies, ['gpu-overflow']);
    assert.match(failing.errors[0] ?? '', /gpu-overflow.*overflow/);
    const logged = logs.map((l) => JSON.parse(l) as { msg: string; errors?: string[] }).find((l) => l.msg === 'authorization denied: evaluation failed');
    assert.match(logged?.errors?.[0] ?? '', /gpu-overflow.*overflow/, 'the reason is logged');
  });

  it('denies before start', async () => {
    const authz = new CedarAuthorizer({ policiesDir, schemaFile: 'schema.cedarschema' });
    const d = await authz.authorize(request(principal({ source: 'local-admin' }), 'plugin:read', { type: 'Plugin', id: '*' }));
    assert.equal(d.decision, 'deny');
    assert.match(d.errors[0] ?? '', /not started/);
  });
});

describe('an invalid policy set stops start', () => {
  it('names the policy, its file and the problem when a policy does not validate', async () => {
    const dir = await folder(['tenants.cedar', { 'broken.cedar': '@id("reads-optional")\npermit (principal, action, resource is WorkerManager::Worker) when { resource.tenant == "a" };' }]);
    const error = await startError(dir);
    assert.equal(error.code, 'HOST_ERR_AUTHZ_POLICY_INVALID');
    assert.match(error.message, /policy "reads-optional" in .*broken\.cedar does not validate against the schema: .*optional attribute `tenant`/);
    assert.equal(error.details?.['policy'], 'reads-optional');
  });

  it('points at the line of a syntax error', async () => {
    const dir = await folder([{ 'typo.cedar': '@id("ok") permit (principal, action, resource);\n\npermit (principal, action, resource) when { resource. };' }]);
    const error = await startError(dir);
    assert.equal(error.code, 'HOST_ERR_AUTHZ_POLICY_INVALID');
    assert.match(error.message, /typo\.cedar:3:\d+: /);
  });

  it('refuses an unknown entity type, a duplicate id, an unreadable schema and an empty folder', async () => {
    const unknownType = await startError(await folder([{ 'a.cedar': '@id("x") permit (principal is WorkerManager::Robot, action, resource);' }]));
    assert.match(unknownType.message, /policy "x" .*Robot/);
    const duplicate = await startError(await folder([{ 'a.cedar': '@id("x") permit (principal, action, resource);', 'b.cedar': '@id("x") forbid (principal, action, resource);' }]));
    assert.match(duplicate.message, /policy id "x" is used twice: in .*a\.cedar and .*b\.cedar/);
    const noSchema = new CedarAuthorizer({ policiesDir: await folder([{ 'a.cedar': 'permit (principal, action, resource);' }]), schemaFile: 'missing.cedarschema' });
    await assert.rejects(noSchema.start(), (e: Error & { code?: string }) => e.code === 'HOST_ERR_AUTHZ_POLICY_INVALID' && /cannot read the Cedar schema .*missing\.cedarschema/.test(e.message));
    const empty = await startError(await folder([]));
    assert.match(empty.message, /holds no \.cedar file/);
  });

  it('names policies without an @id after their file and position', async () => {
    const dir = await folder([{ 'plain.cedar': 'permit (principal, action == WorkerManager::Action::"plugin:read", resource);' }]);
    const authz = await started(dir);
    const d = await authz.authorize(request(principal(), 'plugin:read', { type: 'Plugin', id: 'p' }));
    assert.deepEqual(d.policies, ['plain.cedar#0']);
  });
});

describe('createAuthorizer', () => {
  it('resolves a relative policiesDir against the config folder', async () => {
    const dir = await folder([{ 'only.cedar': '@id("only") permit (principal, action == WorkerManager::Action::"event:read", resource);' }]);
    const authz = createAuthorizer({ adapter: 'cedar', cedar: { policiesDir: dir.split('/').pop() as string, schemaFile: 'schema.cedarschema' } }, { configDir: `${dir}/..` });
    await authz.start();
    assert.deepEqual((await authz.authorize(request(principal(), 'event:read', { type: 'Host', id: 'events' }))).policies, ['only']);
  });

  it('refuses adapter avp without its settings', () => {
    assert.throws(() => createAuthorizer({ adapter: 'avp', cedar: { schemaFile: 'schema.cedarschema' } }, { configDir: '.' }), (e: Error & { code?: string }) => e.code === 'HOST_ERR_AUTHZ_CONFIG_INVALID');
  });
});
