/**
 * authz: the cost of authorization, measured against the same work without it, in the same run.
 *
 * 1. Decision: the embedded Cedar adapter with the shipped policies (`authorize()`: mapping, `statefulIsAuthorized`
 *    with request validation, fail-closed reading of the answer) over a mix of requests, against a no-op authorizer
 *    that allows at once. Target: Cedar p99 <= 1 ms. Measured with the decision cache off, so every call is an engine
 *    evaluation (the worst case); what a remembered decision costs is printed beside it.
 * 2. API: `GET /v1/plugins` on one host, through three servers over the same services: the host's own API
 *    (authentication with the local admin token, Cedar, and the fsynced audit log: the production default), the same
 *    guard without the audit log, and a server with authentication and authorization disabled. Overhead = p50 of the
 *    first minus p50 of the last. Target: <= 1.5 ms. Subjects alternate in rounds so machine noise hits all alike.
 *    The requests repeat, so after the first one Cedar answers from its decision cache, as it does for a client that
 *    polls; part 1 gives the cost of an evaluation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startApiServer } from '../../host/src/api/startApiServer.ts';
import { loadConfig } from '../../host/src/config/loadConfig.ts';
import { AccessGuard } from '../../host/src/security/authn/AccessGuard.ts';
import { LocalAdminAuthenticator } from '../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { ACTIONS, type AuthzRequest, type AuthzResource, type Authorizer } from '../../host/src/security/authz/Authorizer.ts';
import { CedarAuthorizer } from '../../host/src/security/authz/adapters/CedarAuthorizer.ts';
import type { Principal } from '../../host/src/security/Principal.ts';
import { processProviderYaml, repoRoot, startTestHost } from '../helpers/startTestHost.ts';
import { percentile } from './measure.ts';

const DECISION_WARMUP = 2_000;
const DECISION_ROUNDS = 10;
const DECISION_PER_ROUND = 2_000;
const API_WARMUP = 200;
const API_ROUNDS = 10;
const API_PER_ROUND = 150;

type Stats = { p50: number; p95: number; p99: number };
const stats = (samples: Float64Array): Stats => {
  samples.sort();
  return { p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), p99: percentile(samples, 0.99) };
};
const fmt = (n: number): string => n.toFixed(1);

/** Alternating rounds of sequential calls; microseconds per call. */
async function measure(subjects: Array<() => Promise<unknown>>, warmup: number, rounds: number, perRound: number): Promise<Stats[]> {
  const samples = subjects.map(() => new Float64Array(rounds * perRound));
  for (const subject of subjects) for (let i = 0; i < warmup; i++) await subject();
  for (let round = 0; round < rounds; round++) {
    for (let s = 0; s < subjects.length; s++) {
      const subject = subjects[(s + round) % subjects.length] as () => Promise<unknown>;
      const out = samples[(s + round) % subjects.length] as Float64Array;
      for (let i = 0; i < perRound; i++) {
        const start = performance.now();
        await subject();
        out[round * perRound + i] = (performance.now() - start) * 1_000;
      }
    }
  }
  return samples.map(stats);
}

// --- 1. Decision latency ---------------------------------------------------------------------------------------------

const policies = { policiesDir: path.join(repoRoot, 'config', 'policies'), schemaFile: 'schema.cedarschema' };
const cedarAuthz = new CedarAuthorizer({ ...policies, decisionCacheSize: 0 });
await cedarAuthz.start();
const cachedAuthz = new CedarAuthorizer(policies);
await cachedAuthz.start();
const noop: Authorizer = { adapter: 'noop', start: async () => undefined, stop: async () => undefined, authorize: async () => ({ decision: 'allow', policies: [], errors: [] }) };

// A fixed mix: tenant users on workers and secrets (allowed and denied), the local admin, plugin reads.
const users: Principal[] = [
  { kind: 'user', id: 'alice', tenant: 'a', roles: ['dev'], scopes: ['openid'], source: 'oidc' },
  { kind: 'service', id: 'sa-ci', clientId: 'ci-operator', tenant: 'b', roles: ['security_admin'], scopes: [], source: 'oidc' },
  { kind: 'user', id: 'local-admin', roles: ['admin'], scopes: [], source: 'local-admin' },
];
const mix: AuthzRequest[] = [];
for (const [i, action] of ACTIONS.entries()) {
  for (const [j, principal] of users.entries()) {
    const tenant = (i + j) % 2 === 0 ? 'a' : 'b';
    const resource: AuthzResource = action.startsWith('worker:') ? { type: 'Worker', id: `w-${i}`, tenant, owner: 'alice', provider: 'local' }
      : action.startsWith('secret:') ? { type: 'Secret', id: 'vault/db', tenant, credentials: 'vault' }
        : action === 'event:read' ? { type: 'Host', id: 'events' } : { type: 'Plugin', id: '*' };
    mix.push({ principal, action, resource, context: { hourOfDay: (i * 5) % 24, ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }), ...(action === 'worker:create' ? { costEstimate: 2.5, requested: { cpuMillicores: 2000, memoryMiB: 512 } } : {}) } });
  }
}
const outcomes = { allow: 0, deny: 0 };
for (const req of mix) {
  const d = await cedarAuthz.authorize(req);
  assert.deepEqual(d.errors, [], JSON.stringify(req));
  outcomes[d.decision]++;
}
let k = 0;
const [cedarStats, cachedStats, noopStats] = await measure([
  () => cedarAuthz.authorize(mix[k++ % mix.length] as AuthzRequest),
  () => cachedAuthz.authorize(mix[k++ % mix.length] as AuthzRequest),
  () => noop.authorize(mix[k++ % mix.length] as AuthzRequest),
], DECISION_WARMUP, DECISION_ROUNDS, DECISION_PER_ROUND) as [Stats, Stats, Stats];
console.log(`decision (${mix.length} requests: ${outcomes.allow} allow, ${outcomes.deny} deny; ${DECISION_ROUNDS * DECISION_PER_ROUND} calls each)`);
console.log(`  cedar, every call evaluated   p50 ${fmt(cedarStats.p50)} us  p95 ${fmt(cedarStats.p95)} us  p99 ${fmt(cedarStats.p99)} us`);
console.log(`  cedar, remembered decisions   p50 ${fmt(cachedStats.p50)} us  p95 ${fmt(cachedStats.p95)} us  p99 ${fmt(cachedStats.p99)} us`);
console.log(`  no-op                         p50 ${fmt(noopStats.p50)} us  p95 ${fmt(noopStats.p95)} us  p99 ${fmt(noopStats.p99)} us`);
const decisionLine = { bench: 'authz', metric: 'cedar_decision_p99_us', value: +fmt(cedarStats.p99), baseline: +fmt(noopStats.p99), ratio: +(cedarStats.p99 / noopStats.p99).toFixed(2), unit: 'us' };
console.log(JSON.stringify(decisionLine));
await cedarAuthz.stop();
await cachedAuthz.stop();

// --- 2. API overhead -------------------------------------------------------------------------------------------------

const t = await startTestHost(`
host: { id: bench-authz, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml('local')}`);
// The host's own config (the file startTestHost wrote), so the extra servers listen like the host's: loopback, port 0.
const { config } = await loadConfig(path.join(t.dir, 'wm.yaml'), { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
const services = { workers: t.host.workers, registry: t.host.registry, logger: t.host.logger, bus: t.host.bus, subjects: t.host.subjects };
// The same guard as the host's, without the audit sink: its own local admin token, in its own folder.
const guardDir = await mkdtemp(path.join(os.tmpdir(), 'wm-bench-authz-'));
const authenticator = new LocalAdminAuthenticator({ stateDir: guardDir });
await authenticator.start();
const noAudit = await startApiServer(config, { ...services, auth: { guard: new AccessGuard({ authenticator, authorizer: t.host.authorizer }) } });
const open = await startApiServer(config, services);

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const hostToken = `Bearer ${(await readFile(t.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim()}`;
const guardToken = `Bearer ${(await readFile(authenticator.file, 'utf8')).trim()}`;

function get(base: string, authorization?: string): () => Promise<void> {
  const url = new URL('/v1/plugins', base);
  return () => new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, agent, headers: authorization === undefined ? {} : { authorization } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url.href}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const [full, guardOnly, disabled] = await measure([
  get(t.host.apiUrl ?? assert.fail('no api'), hostToken),
  get(noAudit.url, guardToken),
  get(open.url),
], API_WARMUP, API_ROUNDS, API_PER_ROUND) as [Stats, Stats, Stats];
const auditFile = path.join(t.dir, 'state', 'audit', 'audit.log');
const audited = (await readFile(auditFile, 'utf8')).split('\n').filter((l) => l.length > 0).length;
console.log(`api GET /v1/plugins (${API_ROUNDS * API_PER_ROUND} requests each, one kept-alive connection; ${audited} audit records written)`);
console.log(`  authn + cedar + audit log   p50 ${fmt(full.p50)} us  p95 ${fmt(full.p95)} us`);
console.log(`  authn + cedar, no audit     p50 ${fmt(guardOnly.p50)} us  p95 ${fmt(guardOnly.p95)} us`);
console.log(`  disabled                    p50 ${fmt(disabled.p50)} us  p95 ${fmt(disabled.p95)} us`);
console.log(`  overhead p50: ${fmt(full.p50 - disabled.p50)} us with the audit log, ${fmt(guardOnly.p50 - disabled.p50)} us without (target <= 1500 us)`);

agent.destroy();
await noAudit.close(1_000);
await open.close(1_000);
await authenticator.stop();
await rm(guardDir, { recursive: true, force: true });
await t.stop();
console.log(JSON.stringify({ bench: 'authz', metric: 'api_request_p50_us:authn+cedar+audit_vs_disabled', value: +fmt(full.p50), baseline: +fmt(disabled.p50), ratio: +(full.p50 / disabled.p50).toFixed(2), unit: 'us' }));
