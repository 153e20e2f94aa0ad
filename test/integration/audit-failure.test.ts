import assert from 'node:assert/strict';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workerCommandExecutor } from '../../host/src/bus/commands/dispatchWorkerCommand.ts';
import { guardedCommandExecutor } from '../../host/src/bus/commands/guardedCommandExecutor.ts';
import { auditLogPath } from '../../host/src/security/audit/AuditLog.ts';
import { AccessGuard } from '../../host/src/security/authn/AccessGuard.ts';
import { hostPrincipal } from '../../host/src/security/authn/createAuthenticator.ts';
import { LocalAdminAuthenticator } from '../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

const SPEC = { command: ['sleep', '600'] };

/**
 * A host whose audit log cannot be made durable: the file is a symlink to /dev/null, which takes writes but whose
 * fdatasync the kernel refuses (EINVAL). A real failure, no fs stand-in. Nothing may run without its record.
 */
describe('a host whose audit log cannot sync', () => {
  let t: TestHost;
  let call: (method: string, route: string, body?: unknown) => Promise<Response>;
  before(async () => {
    t = await startTestHost(`
host: { id: audit-failure, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml()}`, {
      beforeStart: async (dir) => {
        const file = auditLogPath(path.join(dir, 'state'));
        await mkdir(path.dirname(file), { recursive: true });
        await symlink('/dev/null', file);
      },
    });
    const url = t.host.apiUrl ?? assert.fail('the API is not listening');
    const token = (await readFile(t.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim();
    call = (method, route, body) => fetch(new URL(route, url), {
      method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  });
  after(async () => {
    for (const w of await t.host.workers.listWorkers({})) await t.host.workers.terminateWorker(w.worker.workerId).catch(() => undefined);
    await t.stop();
  });

  it('refuses the API call whose record failed and every later one with 503 HOST_ERR_AUDIT_UNAVAILABLE, runs none, and keeps running', async () => {
    for (const [method, route, body] of [['POST', '/v1/workers', { spec: SPEC, workerId: 'first' }], ['POST', '/v1/workers', { spec: SPEC, workerId: 'second' }], ['GET', '/v1/workers', undefined]] as const) {
      const res = await call(method, route, body);
      assert.equal(res.status, 503, `${method} ${route}`);
      const error = (await res.json()) as { code: string; details?: { reason?: string } };
      assert.equal(error.code, 'HOST_ERR_AUDIT_UNAVAILABLE');
      assert.equal(error.details?.reason, 'sync_failed');
    }
    assert.deepEqual(await t.host.workers.listWorkers({}), [], 'a call ran without a durable record');
    const fatal = t.logs.map((l) => JSON.parse(l) as { level: number; records?: Array<{ resource: string; decision: string }> }).find((l) => l.level === 60);
    assert.deepEqual(fatal?.records?.map((r) => [r.resource, r.decision]), [['Worker::first', 'allow']], 'the log line keeps the record the file may have lost');
    assert.equal((await fetch(new URL('/healthz', t.host.apiUrl))).status, 200, 'the host keeps running');
  });

  it('refuses a bus command the same way, before it runs', async () => {
    // Token-less, as the host's service identity: the authenticator is never asked.
    const guard = new AccessGuard({ authenticator: new LocalAdminAuthenticator({ stateDir: t.dir }), authorizer: t.host.authorizer, audit: t.host.audit });
    const executor = guardedCommandExecutor(workerCommandExecutor(t.host.workers), { guard, serviceIdentity: hostPrincipal({ commands: true, roles: [] }, 'audit-failure') });
    await assert.rejects(executor.run({ operation: 'create', idempotencyKey: 'cmd-1', params: { workerId: 'by-command', spec: SPEC } }), { code: 'HOST_ERR_AUDIT_UNAVAILABLE' });
    assert.deepEqual(await t.host.workers.listWorkers({}), []);
  });
});

/** A host whose audit log file is a symlink to `device`, with the local admin token, started on the process provider. */
async function hostOnDevice(id: string, device: string): Promise<{ h: TestHost; get: (route: string) => Promise<Response> }> {
  const h = await startTestHost(`
host: { id: ${id}, stateDir: \${DIR}/state, logLevel: warn }
api: { enabled: true, port: 0 }
${processProviderYaml()}`, {
    beforeStart: async (dir) => {
      const file = auditLogPath(path.join(dir, 'state'));
      await mkdir(path.dirname(file), { recursive: true });
      await symlink(device, file);
    },
  });
  const token = (await readFile(h.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim();
  const url = h.host.apiUrl ?? assert.fail('the API is not listening');
  return { h, get: (route) => fetch(new URL(route, url), { headers: { authorization: `Bearer ${token}` } }) };
}

/**
 * A read (`worker:read`) runs while its audit record is being written, so a storm of requests does not make it queue
 * twice; its answer waits until the record is in the log file (its fsync follows within the sync lag). A read whose
 * record cannot be written is answered with the audit's error, never with the data it read.
 */
describe('a read and its audit record', () => {
  it('answers 503 HOST_ERR_AUDIT_UNAVAILABLE instead of the data when the record cannot be written', async (t) => {
    // /dev/full refuses every write (ENOSPC).
    const { h, get } = await hostOnDevice('audit-failure-read', '/dev/full');
    t.after(() => h.stop());
    const res = await get('/v1/workers?label=suite=audit');
    assert.equal(res.status, 503);
    const body = (await res.json()) as { code: string; items?: unknown; details?: { reason?: string } };
    assert.equal(body.code, 'HOST_ERR_AUDIT_UNAVAILABLE');
    assert.equal(body.details?.reason, 'write_failed');
    assert.equal(body.items, undefined, 'no listing leaves without its audit record');
  });

  it('is answered once its record is written; a sync that then fails keeps the record in the fatal log line and refuses what follows', async (t) => {
    // /dev/null takes the write and refuses the fdatasync that follows within the sync lag.
    const { h, get } = await hostOnDevice('audit-failure-read-sync', '/dev/null');
    t.after(() => h.stop());
    const first = await get('/v1/workers?label=suite=audit');
    assert.equal(first.status, 200, 'the record was written: the read is answered');
    const fatal = await waitFor(() => h.logs.map((l) => JSON.parse(l) as { level: number; records?: Array<{ action: string }> }).find((l) => l.level === 60), 'the failed sync of the read\'s record', budget(30_000));
    assert.deepEqual(fatal.records?.map((r) => r.action), ['worker:read'], 'the log line keeps the record the file may have lost');
    const later = await get('/v1/workers?label=suite=audit');
    assert.equal(later.status, 503);
    assert.equal(((await later.json()) as { details?: { reason?: string } }).details?.reason, 'sync_failed');
  });
});
