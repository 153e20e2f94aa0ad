import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OperationRecord } from '../../../host/src/observability/OperationObserver.ts';
import { WorkerService } from '../../../host/src/workers/WorkerService.ts';
import type { TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { codeOf, secretValue, startBrokerHost } from './brokerFixtures.ts';

type LogLine = Record<string, unknown> & { op?: string; msg?: string };
const parse = (line: string): LogLine => JSON.parse(line) as LogLine;

describe('process workers with secrets, through the real host', () => {
  let h: TestHost;
  const envValue = secretValue('env');
  const fileValue = secretValue('file');
  const dbPassword = secretValue('dbpw');
  const fresh = secretValue('fresh');

  before(async () => {
    h = await startBrokerHost();
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'app/env', value: envValue });
    await vault.putSecret({ name: 'app/file', value: fileValue });
    await vault.putSecret({ name: 'app/db', value: { user: 'app', password: dbPassword } });
    await vault.putSecret({ name: 'team-a/token', value: envValue });
  });
  after(() => h.stop());

  const sh = async (workerId: string, script: string): Promise<string> => {
    const r = await h.host.workers.executeCommand(workerId, ['sh', '-c', script], budget(60_000), { correlationId: 'corr-exec' });
    assert.equal(r.exitCode, 0, r.stderr);
    return r.stdout;
  };

  it('delivers env and file secrets to the worker, which reads the values', { timeout: budget(120_000) }, async (t) => {
    const { instance, worker } = await h.host.workers.createWorker({
      workerId: 'w-secrets',
      spec: {
        command: ['sleep', '600'],
        secretRefs: [
          { name: 'app/env', mount: 'env', envName: 'APP_SECRET' },
          { name: 'app/file', mount: 'file', path: 'conf/app.txt' },
          { name: 'app/db', mount: 'env', envName: 'DB', keys: ['password'] },
          { name: 'app/db', mount: 'file', path: 'db.json' },
        ],
      },
      correlationId: 'corr-create',
    });
    t.after(() => h.host.workers.terminateWorker('w-secrets', { gracePeriodMs: 0 }));
    assert.equal(instance, 'local');
    assert.equal(worker.workerId, 'w-secrets');
    assert.equal(await sh('w-secrets', 'printf %s "$APP_SECRET"'), envValue);
    assert.equal(await sh('w-secrets', 'printf %s "$DB_PASSWORD"'), dbPassword);
    assert.equal(await sh('w-secrets', 'printf %s "${DB_USER:-unset}"'), 'unset', 'keys selected only password');
    assert.equal(await sh('w-secrets', 'cat "$WM_SECRETS_DIR/conf/app.txt"'), fileValue);
    assert.deepEqual(JSON.parse(await sh('w-secrets', 'cat "$WM_SECRETS_DIR/db.json"')), { user: 'app', password: dbPassword });

    // The worker is a consumer of each secret, with the credentials instance filled in.
    assert.deepEqual(h.host.secrets.consumersOf('vault', 'app/db').map((c) => [c.workerId, c.instance, c.tenant, c.ref.mount]), [
      ['w-secrets', 'local', 'default', 'env'],
      ['w-secrets', 'local', 'default', 'file'],
    ]);
    // The create's events carry its correlation id.
    await waitFor(() => h.events.some((e) => e.busSubject === 'ci.worker.created' && e.subject === 'w-secrets'), 'the WorkerCreated event');
    assert.equal(h.events.find((e) => e.busSubject === 'ci.worker.created' && e.subject === 'w-secrets')?.correlationid, 'corr-create');
  });

  it('refreshes file secrets in place and restarts env-mounted workers on fresh material', { timeout: budget(120_000) }, async (t) => {
    await h.host.workers.createWorker({
      workerId: 'w-refresh',
      spec: { command: ['sleep', '600'], secretRefs: [{ name: 'app/env', mount: 'env', envName: 'APP_SECRET' }, { name: 'app/file', mount: 'file', path: 'app.txt' }] },
    });
    t.after(() => h.host.workers.terminateWorker('w-refresh', { gracePeriodMs: 0 }));
    await h.host.workers.refreshSecrets('w-refresh', [{ strategy: 'file', name: 'app/file', version: '9', path: 'app.txt', value: fresh }], { correlationId: 'corr-refresh' });
    assert.equal(await sh('w-refresh', 'cat "$WM_SECRETS_DIR/app.txt"'), fresh);
    assert.equal(await sh('w-refresh', 'printf %s "$APP_SECRET"'), envValue, 'env is not touched by a refresh');

    const restarted = await h.host.workers.restartWithSecrets('w-refresh', [{ strategy: 'env', name: 'app/env', version: '9', envName: 'APP_SECRET', value: fresh }], { correlationId: 'corr-restart' });
    assert.equal(restarted.workerId, 'w-refresh');
    await waitFor(async () => (await h.host.workers.getStatus('w-refresh')).state.phase === 'Running', 'the restarted worker to run', 60_000);
    assert.equal(await sh('w-refresh', 'printf %s "$APP_SECRET"'), fresh);

    // A plain restart resolves the worker's recorded refs again (the store still holds envValue as current).
    await h.host.workers.restartWorker('w-refresh');
    await waitFor(async () => (await h.host.workers.getStatus('w-refresh')).state.phase === 'Running', 'the restarted worker to run', 60_000);
    assert.equal(await sh('w-refresh', 'printf %s "$APP_SECRET"'), envValue);
    assert.equal(await sh('w-refresh', 'cat "$WM_SECRETS_DIR/app.txt"'), fileValue);
  });

  it('labels workers with their tenant and owner, and refuses a caller-chosen tenant label', { timeout: budget(120_000) }, async (t) => {
    const { worker } = await h.host.workers.createWorker({
      workerId: 'w-tenant',
      tenant: 'team-a',
      owner: 'user-1',
      spec: { command: ['sleep', '600'], labels: { app: 'x' }, secretRefs: [{ name: 'team-a/token', mount: 'env', envName: 'TOKEN' }] },
    });
    t.after(() => h.host.workers.terminateWorker('w-tenant', { gracePeriodMs: 0 }));
    assert.equal(worker.labels['wm.tenant'], 'team-a');
    assert.equal(worker.labels['wm.owner'], 'user-1');
    assert.equal(worker.labels['app'], 'x');
    assert.deepEqual((await h.host.workers.listWorkers({ labels: { 'wm.tenant': 'team-a' } })).map((r) => r.worker.workerId), ['w-tenant']);
    assert.equal(h.host.secrets.consumersOf('vault', 'team-a/token')[0]?.tenant, 'team-a');

    const spoof = h.host.workers.createWorker({ workerId: 'w-spoof', tenant: 'team-b', spec: { command: ['sleep', '600'], labels: { 'wm.tenant': 'team-a' } } });
    assert.equal(await codeOf(spoof), 'WM_ERR_VALIDATION');
    const noTenant = h.host.workers.createWorker({ workerId: 'w-spoof', spec: { command: ['sleep', '600'], labels: { 'wm.owner': 'someone' } } });
    assert.equal(await codeOf(noTenant), 'WM_ERR_VALIDATION');
  });

  it('forgets the consumers of a terminated worker, and of a create that failed', { timeout: budget(120_000) }, async () => {
    await h.host.workers.createWorker({ workerId: 'w-gone', spec: { command: ['sleep', '600'], secretRefs: [{ name: 'app/env', mount: 'env' }] } });
    assert.ok(h.host.secrets.consumersOfWorker('w-gone').length === 1);
    await h.host.workers.terminateWorker('w-gone', { gracePeriodMs: 0 });
    assert.deepEqual(h.host.secrets.consumersOfWorker('w-gone'), []);

    // The provider refuses the spec (workingDir outside the worker folder) after the secrets were resolved.
    const failed = h.host.workers.createWorker({ workerId: 'w-failed', spec: { command: ['sleep', '600'], workingDir: '../..', secretRefs: [{ name: 'app/env', mount: 'env' }] } });
    assert.equal(await codeOf(failed), 'WM_ERR_VALIDATION');
    assert.deepEqual(h.host.secrets.consumersOfWorker('w-failed'), []);
  });

  it('logs exactly one JSON line per operation, with the fields the dashboards read, and tells the observer', { timeout: budget(120_000) }, async () => {
    const start = h.logs.length;
    await h.host.workers.createWorker({ workerId: 'w-log', spec: { command: ['sleep', '600'] }, correlationId: 'corr-log', tenant: 'default' });
    await h.host.workers.getStatus('w-log', { correlationId: 'corr-log' });
    await h.host.workers.pauseWorker('w-log', { correlationId: 'corr-log' });
    await h.host.workers.resumeWorker('w-log', { correlationId: 'corr-log' });
    await codeOf(h.host.workers.executeCommand('w-nope', ['true'], undefined, { correlationId: 'corr-log' }));
    await h.host.workers.listWorkers({ provider: 'local' }, { correlationId: 'corr-log' });
    await h.host.workers.terminateWorker('w-log', { gracePeriodMs: 0, correlationId: 'corr-log' });
    const lines = h.logs.slice(start).map(parse).filter((l) => l.correlationId === 'corr-log' && typeof l.op === 'string' && 'latencyMs' in l);
    assert.deepEqual(lines.map((l) => `${l.op}:${String(l.result)}`), [
      'createWorker:ok', 'getStatus:ok', 'pauseWorker:ok', 'resumeWorker:ok', 'executeCommand:error', 'listWorkers:ok', 'terminateWorker:ok',
    ]);
    const create = lines[0] as LogLine;
    for (const field of ['time', 'level', 'hostId', 'instance', 'plugin', 'op', 'workerId', 'correlationId', 'tenant', 'result', 'category', 'code', 'latencyMs']) {
      assert.ok(field in create, `log line lacks ${field}: ${JSON.stringify(create)}`);
    }
    assert.equal(create.instance, 'local');
    assert.equal(create.plugin, 'process');
    assert.equal(create.workerId, 'w-log');
    assert.equal(create.tenant, 'default');
    const failed = lines[4] as LogLine;
    assert.equal(failed.code, 'WM_ERR_NOT_FOUND');
    assert.equal(failed.category, 'ClientValidation');
    assert.equal(typeof failed.latencyMs, 'number');

    // The same service built with an observer: one record per operation, with the same facts as the log line.
    const records: OperationRecord[] = [];
    const observed = new WorkerService({
      registry: h.host.registry, bus: h.host.bus, subjects: h.host.subjects, hostId: 'broker', logger: h.host.logger, secrets: h.host.secrets, observer: (r) => records.push(r),
    });
    await observed.createWorker({ workerId: 'w-obs', spec: { command: ['sleep', '600'] }, correlationId: 'corr-obs', tenant: 'default' });
    await codeOf(observed.pauseWorker('w-none', { correlationId: 'corr-obs' }));
    await observed.terminateWorker('w-obs', { gracePeriodMs: 0, correlationId: 'corr-obs' });
    assert.deepEqual(records.map((r) => [r.op, r.result, r.instance, r.plugin, r.workerId, r.correlationId, r.code]), [
      ['createWorker', 'ok', 'local', 'process', 'w-obs', 'corr-obs', undefined],
      ['pauseWorker', 'error', undefined, undefined, 'w-none', 'corr-obs', 'WM_ERR_NOT_FOUND'],
      ['terminateWorker', 'ok', 'local', 'process', 'w-obs', 'corr-obs', undefined],
    ]);
    assert.ok(records.every((r) => typeof r.latencyMs === 'number' && r.latencyMs >= 0));
  });
});
