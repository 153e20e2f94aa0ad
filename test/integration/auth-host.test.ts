import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { jetstreamManager } from '@nats-io/jetstream';
import { JetStreamCommandClient, readCommandRecord, resultSubject } from '../../host/src/bus/adapters/jetstream/index.ts';
import { subjectsFor, type CommandReply, type WorkerCommand } from '../../host/src/bus/index.ts';
import { parseConfig } from '../../host/src/config/loadConfig.ts';
import { Host } from '../../host/src/Host.ts';
import type { AuditEntry, AuditSink } from '../../host/src/security/audit/AuditSink.ts';
import type { AuthzDecision, Authorizer, AuthzRequest } from '../../host/src/security/authz/Authorizer.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { processProviderYaml } from '../helpers/startTestHost.ts';
import { startTestIdentityProvider, type TestIdentityProvider } from '../helpers/testIdentityProvider.ts';
import { budget } from '../helpers/waitFor.ts';

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';

/** Allows admins everything and tenant members reads of their tenant; denies the rest. */
class AdminOrTenantRead implements Authorizer {
  readonly adapter = 'test-rules';
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async authorize({ principal, action, context }: AuthzRequest): Promise<AuthzDecision> {
    if (principal.source === 'local-admin') return { decision: 'allow', policies: ['local-admin'], errors: [] };
    if (action === 'worker:read' && context.tenant !== undefined) return { decision: 'allow', policies: ['tenant-read'], errors: [] };
    return { decision: 'deny', policies: [], errors: [] };
  }
}

class MemoryAudit implements AuditSink {
  readonly entries: AuditEntry[] = [];
  async record(entry: AuditEntry): Promise<void> {
    this.entries.push(entry);
  }
}

/** A real host from YAML in a temp folder, its JSON log lines kept. */
async function bootHost(yaml: (dir: string) => string, extra: { authorizer?: Authorizer; audit?: AuditSink } = {}): Promise<{ host: Host; dir: string; logs: string[]; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-auth-host-'));
  const file = path.join(dir, 'wm.yaml');
  const text = yaml(dir);
  await writeFile(file, text);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      done();
    },
  });
  const loaded = parseConfig(text, file, { env: { PATH } });
  const host = new Host({ loaded, logger: pino({ level: 'debug' }, sink), ...extra });
  try {
    await host.start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host, dir, logs,
    async stop() {
      await host.stop({ timeoutMs: budget(30_000) });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const processPlugin = processProviderYaml();

describe('Host embedded default: local admin token', () => {
  it('refuses to start with a non-loopback api.host and local authentication, before any plugin runs', async () => {
    await assert.rejects(bootHost((dir) => `host: { id: h-open, stateDir: ${dir}/state }\napi: { enabled: true, host: 0.0.0.0, port: 0 }\n${processPlugin}`), (err: unknown) => {
      assert.ok(err instanceof WorkerManagerError);
      assert.equal(err.code, 'HOST_ERR_AUTH_INSECURE_BIND');
      assert.equal(err.details?.['host'], '0.0.0.0');
      return true;
    });
  });

  it('writes <stateDir>/admin.token (0600), logs its path but never the token, and accepts only that token', async () => {
    const audit = new MemoryAudit();
    const t = await bootHost((dir) => `host: { id: h-local, stateDir: ${dir}/state }\napi: { enabled: true, port: 0 }\n${processPlugin}`, { authorizer: new AdminOrTenantRead(), audit });
    try {
      const file = t.host.adminTokenFile ?? assert.fail('no admin token file in local mode');
      assert.equal(file, path.join(t.dir, 'state', 'admin.token'));
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const token = (await readFile(file, 'utf8')).trim();
      assert.ok(t.logs.some((l) => l.includes(file)), 'the path is logged');
      assert.ok(!t.logs.some((l) => l.includes(token)), 'the token is not');
      const base = t.host.apiUrl ?? assert.fail('no api');
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const anonymous = await fetch(`${base}/v1/workers`);
      assert.equal(anonymous.status, 401);
      assert.equal(((await anonymous.json()) as { code: string }).code, 'WM_ERR_AUTHENTICATION');
      const wrong = await fetch(`${base}/v1/workers`, { headers: { authorization: 'Bearer not-the-token' } });
      assert.equal(wrong.status, 401);
      assert.equal(((await wrong.json()) as { details: { reason: string } }).details.reason, 'invalid_token');
      const ok = await fetch(`${base}/v1/workers`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200, await ok.clone().text());
      assert.equal(audit.entries.at(-1)?.principal.id, 'local-admin');
      assert.ok(!t.logs.some((l) => l.includes(token)), 'not even after requests');
    } finally {
      await t.stop();
    }
  });

  it('authorizes with the embedded Cedar engine and its shipped policies when no authorizer is configured', async () => {
    const t = await bootHost((dir) => `host: { id: h-noauthz, stateDir: ${dir}/state }\napi: { enabled: true, port: 0 }\n${processPlugin}`);
    try {
      const token = (await readFile(t.host.adminTokenFile ?? assert.fail('no file'), 'utf8')).trim();
      const res = await fetch(`${t.host.apiUrl ?? ''}/v1/workers`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(t.host.authorizer.adapter, 'cedar');
    } finally {
      await t.stop();
    }
  });
});

const nats = natsServerAvailable();
const RESULTS = 'WM_AUTHCMD_COMMAND_RESULTS';

describe('Host serving bus commands over JetStream with OIDC tokens', { skip: nats.ok ? false : nats.message }, () => {
  let server: NatsServer;
  let idp: TestIdentityProvider;
  let t: Awaited<ReturnType<typeof bootHost>>;
  let nc: NatsConnection;
  let client: JetStreamCommandClient;
  const audit = new MemoryAudit();

  before(async () => {
    server = await startNatsServer();
    idp = await startTestIdentityProvider();
    t = await bootHost((dir) => `
host: { id: h-cmd, stateDir: ${dir}/state, logLevel: warn }
api: { enabled: true, host: 0.0.0.0, port: 0 }
bus:
  adapter: jetstream
  subjectPrefix: authcmd
  serveCommands: true
  jetstream: { servers: ["${server.url}"], connectTimeoutMs: 30000, reconnectWaitMs: 100 }
security:
  authentication:
    mode: oidc
    oidc: { issuer: "${idp.issuer}", audience: ${idp.audience}, requiredScopes: [wm:api], allowInsecureHttp: true }
${processPlugin}`, { authorizer: new AdminOrTenantRead(), audit });
    nc = await connect({ servers: server.url });
    client = new JetStreamCommandClient(nc, { subjects: subjectsFor('authcmd'), resultsStream: RESULTS });
  });
  after(async () => {
    await nc?.close();
    await t?.stop();
    await idp?.close();
    await server?.dispose();
  });

  const list = (key: string, token?: string): WorkerCommand => ({ operation: 'list', idempotencyKey: key, params: {}, ...(token === undefined ? {} : { auth: { token } }) });
  const failure = (reply: CommandReply): { code: string; reason: unknown } => {
    assert.equal(reply.ok, false, JSON.stringify(reply));
    const { error } = reply as Extract<CommandReply, { ok: false }>;
    return { code: error.code, reason: (error.details as { reason?: unknown } | undefined)?.reason };
  };

  it('listens beyond loopback when OIDC is configured', () => {
    assert.match(t.host.apiUrl ?? '', /^http:\/\/0\.0\.0\.0:\d+$/);
    assert.equal(t.host.adminTokenFile, undefined);
  });

  it('refuses missing, forged, expired and wrong-audience tokens with their reason, without recording a result', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'missing'],
      [await idp.mint({}, { key: 'forged' }), 'signature'],
      [await idp.mint({ iat: now - 900, exp: now - 300 }), 'expired'],
      [await idp.mint({ nbf: now + 3_600 }), 'not_yet_valid'],
      [await idp.token('ci-operator', { resource: 'urn:other-api' }), 'audience'],
      [await idp.mint({ iss: 'https://keycloak.example/realms/x' }), 'issuer'],
      [await idp.token('ci-reader'), 'scope'],
    ];
    for (const [i, [token, reason]] of cases.entries()) {
      assert.deepEqual(failure(await client.send(list(`bad-${i}`, token), { timeoutMs: budget(60_000) })), { code: 'WM_ERR_AUTHENTICATION', reason });
    }
    // Refusals are answered but never stored as the key's result, so a key is not bound to a 401 for ever.
    const jsm = await jetstreamManager(nc);
    for (const i of cases.keys()) assert.equal(await readCommandRecord(jsm, RESULTS, resultSubject('authcmd', `bad-${i}`)), undefined);
  });

  it('allows what the policy allows, denies the rest with 403-style WM_ERR_AUTHORIZATION', async () => {
    const operator = await idp.token('ci-operator');
    const listed = await client.send(list('ok-list', operator), { timeoutMs: budget(60_000) });
    assert.equal(listed.ok, true, JSON.stringify(listed));
    const create: WorkerCommand = { operation: 'create', idempotencyKey: 'denied-create', params: { spec: { command: ['sleep', '30'] } }, auth: { token: operator } };
    assert.deepEqual(failure(await client.send(create, { timeoutMs: budget(60_000) })), { code: 'WM_ERR_AUTHORIZATION', reason: 'denied' });
    assert.deepEqual((await t.host.workers.listWorkers()).map((w) => w.worker.workerId), [], 'nothing was created');
    const decisions = audit.entries.filter((e) => e.details?.['channel'] === 'bus').map((e) => `${e.decision} ${e.action}`);
    assert.deepEqual(decisions.slice(-2), ['allow worker:read', 'deny worker:create']);
  });
});
