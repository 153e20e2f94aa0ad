import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ACTIONS, type AuthzRequest, type AuthzResource } from '../../../host/src/security/authz/Authorizer.ts';
import { AvpAuthorizer } from '../../../host/src/security/authz/adapters/AvpAuthorizer.ts';
import { CedarAuthorizer } from '../../../host/src/security/authz/adapters/CedarAuthorizer.ts';
import { createAuthorizer } from '../../../host/src/security/authz/createAuthorizer.ts';
import { loadCedarPolicies } from '../../../host/src/security/authz/loadCedarPolicies.ts';
import type { Principal } from '../../../host/src/security/Principal.ts';
import { startAvpDouble, type AvpDouble } from '../../helpers/avpDouble.ts';
import { budget } from '../../helpers/waitFor.ts';
import { policyFolder, principal, request } from './authzFixtures.ts';

// The deadline of calls the double answers (or refuses) at once: a loaded machine must not turn them into denials.
const HEALTHY_TIMEOUT_MS = budget(30_000);

const STORE = 'ps-test-0001';
// Dummy credentials: the SDK signs (SigV4) as it would against AWS; the double only checks a signature is present.
const clientConfig = { credentials: { accessKeyId: 'AKIDTESTTESTTEST', secretAccessKey: 'test-secret' }, maxAttempts: 1 };

// Every default and example policy together, plus one that overflows for large GPU counts, so that the comparison
// covers permits, forbids, schema failures and evaluation errors.
const OVERFLOW = {
  'zz-overflow.cedar': '@id("gpu-overflow")\nforbid (principal, action == WorkerManager::Action::"worker:exec", resource)\nwhen { context has requested && context.requested has gpu && context.requested.gpu * 4611686018427387904 > 0 };',
};
const EXAMPLES = ['business-hours.cedar', 'cost-limit.cedar', 'create-worker-ci-operator.cedar', 'read-secret-same-tenant.cedar', 'rotate-secret-security-admin.cedar', 'terminate-own-worker.cedar'];

/** mulberry32: a small seeded generator, so a failing request can be reproduced. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(count: number, seed: number): AuthzRequest[] {
  const rnd = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)] as T;
  const maybe = <T>(value: T, p = 0.7): T | undefined => (rnd() < p ? value : undefined);
  const ids = ['alice', 'bob', 'sa-agent', 'sa-op', 'local-admin', 'host:h1'];
  const tenants = ['a', 'b', 'c'];
  const out: AuthzRequest[] = [];
  for (let i = 0; i < count; i++) {
    const id = pick(ids);
    const source: Principal['source'] = id === 'local-admin' && rnd() < 0.5 ? 'local-admin' : id === 'host:h1' ? 'host' : 'oidc';
    const tenant = maybe(pick(tenants));
    const clientId = maybe(pick(['ci-operator', 'ci-agent', 'ci-app']), 0.5);
    const p = principal({
      kind: id.startsWith('sa-') || id.startsWith('host') ? 'service' : rnd() < 0.2 ? 'service' : 'user',
      id, source,
      ...(tenant === undefined ? {} : { tenant }),
      ...(clientId === undefined ? {} : { clientId }),
      roles: ['security_admin', 'dev', 'admin'].filter(() => rnd() < 0.3),
      scopes: ['worker:create', 'openid'].filter(() => rnd() < 0.5),
    });
    const action = pick(ACTIONS);
    const attr = (name: string, values: readonly string[]): Record<string, string> => {
      const v = maybe(pick(values));
      return v === undefined ? {} : { [name]: v };
    };
    let resource: AuthzResource;
    // One request in twenty targets a type its action does not apply to: both must deny on the schema.
    const kind = rnd() < 0.05 ? pick(['Worker', 'Secret', 'Host', 'Plugin', 'Provider'] as const) : action.startsWith('worker:') ? 'Worker' : action.startsWith('secret:') ? 'Secret' : action === 'event:read' ? 'Host' : pick(['Plugin', 'Provider'] as const);
    if (kind === 'Worker') resource = { type: 'Worker', id: pick(['w-1', 'w-2', '*']), ...attr('tenant', tenants), ...attr('owner', ids), ...attr('provider', ['local', 'docker']), ...attr('namespace', ['default', 'prod']) };
    else if (kind === 'Secret') resource = { type: 'Secret', id: pick(['vault/db', 'vault/api']), ...attr('tenant', tenants), ...attr('credentials', ['vault']) };
    else resource = { type: kind, id: pick(['*', 'docker', 'events']) };
    const requested = action === 'worker:create' || action === 'worker:exec' ? maybe({ cpuMillicores: Math.floor(rnd() * 8000), memoryMiB: Math.floor(rnd() * 16384), gpu: Math.floor(rnd() * 3) }) : undefined;
    const cost = action === 'worker:create' ? maybe(Math.round(rnd() * 200) / 10) : undefined;
    out.push(request(p, action, resource, {
      hourOfDay: Math.floor(rnd() * 24),
      ...(tenant === undefined ? {} : { tenant }),
      ...(cost === undefined ? {} : { costEstimate: cost }),
      ...(requested === undefined ? {} : { requested }),
    }));
  }
  return out;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('AVP adapter against the protocol double', () => {
  let dir: string;
  let avpDouble: AvpDouble;
  let cedarAuthz: CedarAuthorizer;
  let avp: AvpAuthorizer;

  before(async () => {
    dir = await policyFolder(['administrators.cedar', 'tenants.cedar', ...EXAMPLES.map((f) => `examples/${f}`), OVERFLOW]);
    const loaded = await loadCedarPolicies({ policiesDir: dir, schemaFile: 'schema.cedarschema' });
    // The policy store holds the same schema and policies, under the same ids.
    avpDouble = await startAvpDouble({ [STORE]: { schema: await readFile(path.join(dir, 'schema.cedarschema'), 'utf8'), policies: loaded.policies } });
    cedarAuthz = new CedarAuthorizer({ policiesDir: dir, schemaFile: 'schema.cedarschema' });
    await cedarAuthz.start();
    avp = new AvpAuthorizer({ policyStoreId: STORE, region: 'eu-west-1', endpoint: avpDouble.url, timeoutMs: HEALTHY_TIMEOUT_MS }, { clientConfig });
    await avp.start();
  });
  after(async () => {
    await avp.stop();
    await avpDouble.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('decides 300 generated requests exactly as the embedded engine does', async () => {
    const requests = generate(300, 0x5eed);
    const seen = { allow: 0, deny: 0, errors: 0 };
    for (const [i, req] of requests.entries()) {
      const local = await cedarAuthz.authorize(req);
      const remote = await avp.authorize(req);
      const where = `request ${i}: ${JSON.stringify(req)}`;
      assert.equal(remote.decision, local.decision, where);
      assert.equal(remote.errors.length > 0, local.errors.length > 0, `${where}\nlocal ${JSON.stringify(local.errors)}\nremote ${JSON.stringify(remote.errors)}`);
      // Evaluation errors from AVP carry no policy id field, so only error-free decisions compare their policies.
      if (local.errors.length === 0) assert.deepEqual([...remote.policies].sort(), [...local.policies].sort(), where);
      seen[local.decision]++;
      if (local.errors.length > 0) seen.errors++;
    }
    assert.equal(avpDouble.calls >= 300, true);
    // The generator must exercise both outcomes and the failure path, or the comparison proves little.
    assert.ok(seen.allow >= 30, `only ${seen.allow} allows`);
    assert.ok(seen.deny >= 30, `only ${seen.deny} denies`);
    assert.ok(seen.errors >= 3, `only ${seen.errors} requests with errors`);
  });

  it('denies an erroring policy through AVP too', async () => {
    const req = request(principal({ id: 'local-admin', source: 'local-admin' }), 'worker:exec', { type: 'Worker', id: 'w' }, { requested: { gpu: 2 } });
    const decision = await avp.authorize(req);
    assert.equal(decision.decision, 'deny');
    assert.match(decision.errors.join(), /gpu-overflow.*overflow/);
  });

  it('denies when the service throttles, fails, drops the connection or does not know the store', async () => {
    const admin = request(principal({ id: 'local-admin', source: 'local-admin' }), 'plugin:read', { type: 'Plugin', id: '*' });
    assert.equal((await avp.authorize(admin)).decision, 'allow');
    for (const [fault, pattern] of [
      [{ kind: 'error', status: 429, type: 'ThrottlingException' }, /ThrottlingException/],
      [{ kind: 'error', status: 500, type: 'InternalServerException' }, /InternalServerException/],
      [{ kind: 'error', status: 403, type: 'AccessDeniedException' }, /AccessDeniedException/],
      [{ kind: 'drop' }, /unavailable/],
    ] as const) {
      avpDouble.injectFault(fault, 1);
      const decision = await avp.authorize(admin);
      assert.equal(decision.decision, 'deny', fault.kind);
      assert.match(decision.errors.join(), pattern);
    }
    const otherStore = new AvpAuthorizer({ policyStoreId: 'ps-missing', region: 'eu-west-1', endpoint: avpDouble.url, timeoutMs: HEALTHY_TIMEOUT_MS }, { clientConfig });
    await otherStore.start();
    const missing = await otherStore.authorize(admin);
    await otherStore.stop();
    assert.equal(missing.decision, 'deny');
    assert.match(missing.errors.join(), /ResourceNotFoundException/);
    assert.equal((await avp.authorize(admin)).decision, 'allow', 'answers again once the faults are gone');
  });

  it('denies within timeoutMs when the service does not answer', async () => {
    const slow = new AvpAuthorizer({ policyStoreId: STORE, region: 'eu-west-1', endpoint: avpDouble.url, timeoutMs: 150 }, { clientConfig });
    await slow.start();
    // The answer comes seconds after the 150 ms deadline, so only the deadline can have ended the call in time.
    avpDouble.injectFault({ kind: 'delay', ms: budget(10_000) }, 1);
    const started = performance.now();
    const decision = await slow.authorize(request(principal({ id: 'local-admin', source: 'local-admin' }), 'plugin:read', { type: 'Plugin', id: '*' }));
    const took = performance.now() - started;
    await slow.stop();
    assert.equal(decision.decision, 'deny');
    assert.match(decision.errors.join(), /no answer within 150 ms|unavailable/);
    assert.ok(took < budget(5_000), `took ${took} ms`);
  });

  it('denies when the service is unreachable', async () => {
    const port = await freePort();
    const authz = createAuthorizer({ adapter: 'avp', cedar: { schemaFile: 'schema.cedarschema' }, avp: { policyStoreId: STORE, region: 'eu-west-1', endpoint: `http://127.0.0.1:${port}`, timeoutMs: HEALTHY_TIMEOUT_MS } }, { configDir: '.', avpClientConfig: clientConfig });
    assert.equal(authz.adapter, 'avp');
    await authz.start();
    const decision = await authz.authorize(request(principal({ id: 'local-admin', source: 'local-admin' }), 'plugin:read', { type: 'Plugin', id: '*' }));
    await authz.stop();
    assert.equal(decision.decision, 'deny');
    assert.match(decision.errors.join(), /verified permissions unavailable/);
  });

  it('speaks AWS JSON 1.0: errors carry __type and x-amzn-errortype', async () => {
    const res = await fetch(avpDouble.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': 'VerifiedPermissions.IsAuthorized', authorization: 'AWS4-HMAC-SHA256 Credential=x' },
      body: JSON.stringify({ policyStoreId: 'nope' }),
    });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
    assert.deepEqual(await res.json(), { __type: 'ResourceNotFoundException', message: 'Policy store nope not found', resourceId: 'nope', resourceType: 'POLICY_STORE' });
  });
});
