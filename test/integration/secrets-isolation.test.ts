import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RuntimeSpec } from '@worker-manager/plugin-sdk';
import { dispatchWorkerCommand } from '../../host/src/bus/commands/dispatchWorkerCommand.ts';
import type { TestHost } from '../helpers/startTestHost.ts';
import { codeOf, secretValue, startBrokerHost } from '../host/secrets/brokerFixtures.ts';

interface Received {
  op: string;
  workerId: string;
  count: number;
  mounts: Array<{ name: string; version: string; target: string }>;
}

describe('secret isolation between tenants and between workers', () => {
  let h: TestHost;
  const values = { a1: secretValue('a1'), a2: secretValue('a2'), b1: secretValue('b1'), d1: secretValue('d1') };

  before(async () => {
    h = await startBrokerHost({ recorder: true });
    assert.equal(h.report.find((r) => r.instance === 'rec')?.state, 'running', JSON.stringify(h.report));
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'team-a/one', value: values.a1 });
    await vault.putSecret({ name: 'team-a/two', value: { key: values.a2 } });
    await vault.putSecret({ name: 'team-b/one', value: values.b1 });
    await vault.putSecret({ name: 'shared', value: values.d1 });
  });
  after(() => h.stop());

  /** What the recorder provider was handed so far, one entry per call that carried secrets. */
  const received = async (): Promise<Received[]> => {
    const dir = h.host.registry.instance('rec').stateDir;
    assert.ok(dir !== undefined);
    const text = await readFile(path.join(dir, 'received.jsonl'), 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Received);
  };
  const spec = (...names: string[]): RuntimeSpec => ({ command: ['sleep', '30'], secretRefs: names.map((name) => ({ name, mount: 'env' as const, envName: `S_${name.replace(/\W/g, '_')}` })) });

  it('refuses, on the service path, every ref to a secret of another tenant, and hands the provider nothing', async () => {
    const countBefore = (await received()).length;
    const attempts: Array<[string | undefined, string[]]> = [
      ['team-a', ['team-b/one']],
      ['team-a', ['team-a/one', 'team-b/one']], // one allowed ref does not let the other through
      ['team-b', ['team-a/one']],
      [undefined, ['team-a/one']], // no tenant acts as tenant default
      ['team-a', ['shared']], // a default-tenant secret is not team-a's either
    ];
    for (const [i, [tenant, names]] of attempts.entries()) {
      const workerId = `w-deny-${i}`;
      const create = h.host.workers.createWorker({ workerId, provider: 'rec', spec: spec(...names), ...(tenant === undefined ? {} : { tenant }) });
      assert.equal(await codeOf(create), 'WM_ERR_AUTHORIZATION', `${tenant ?? '(none)'} -> ${names.join(',')}`);
      assert.deepEqual(h.host.secrets.consumersOfWorker(workerId), []);
    }
    // Naming the credentials instance explicitly changes nothing: ownership rules apply to every instance.
    const explicit = h.host.workers.createWorker({ workerId: 'w-deny-x', provider: 'rec', tenant: 'team-a', spec: { command: ['true'], secretRefs: [{ name: 'team-b/one', credentials: 'vault', mount: 'file' }] } });
    assert.equal(await codeOf(explicit), 'WM_ERR_AUTHORIZATION');
    assert.equal((await received()).length, countBefore, 'the provider was called for a refused worker');
    assert.deepEqual((await h.host.workers.listWorkers({ provider: 'rec' })).filter((r) => r.worker.workerId.startsWith('w-deny')), []);
  });

  it('refuses it on the bus command path too', async () => {
    const countBefore = (await received()).length;
    const denied = dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'bus-deny-1', tenant: 'team-a', params: { provider: 'rec', workerId: 'w-bus-deny', spec: spec('team-b/one') } });
    assert.equal(await codeOf(denied), 'WM_ERR_AUTHORIZATION');
    const noTenant = dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'bus-deny-2', params: { provider: 'rec', workerId: 'w-bus-deny', spec: spec('team-b/one') } });
    assert.equal(await codeOf(noTenant), 'WM_ERR_AUTHORIZATION');
    assert.equal((await received()).length, countBefore);

    const allowed = (await dispatchWorkerCommand(h.host.workers, {
      operation: 'create', idempotencyKey: 'bus-ok', tenant: 'team-b', correlationId: 'corr-bus', params: { provider: 'rec', workerId: 'w-bus-b', spec: spec('team-b/one') },
    })) as { instance: string; worker: { labels: Record<string, string> } };
    assert.equal(allowed.instance, 'rec');
    assert.equal(allowed.worker.labels['wm.tenant'], 'team-b');
    assert.deepEqual((await received()).at(-1), { op: 'createWorker', workerId: 'w-bus-b', count: 1, mounts: [{ name: 'team-b/one', version: '1', target: 'env:S_team_b_one' }] });
  });

  it('hands a provider only the mounts of the worker it is creating or restarting', async () => {
    await h.host.workers.createWorker({
      workerId: 'w-a1', provider: 'rec', tenant: 'team-a',
      spec: { command: ['true'], secretRefs: [{ name: 'team-a/one', mount: 'env', envName: 'ONE' }, { name: 'team-a/two', mount: 'file', path: 'two.json' }] },
    });
    await h.host.workers.createWorker({ workerId: 'w-a2', provider: 'rec', tenant: 'team-a', spec: { command: ['true'], secretRefs: [{ name: 'team-a/two', mount: 'env', keys: ['key'] }] } });
    await h.host.workers.createWorker({ workerId: 'w-plain', provider: 'rec', tenant: 'team-a', spec: { command: ['true'] } });
    await h.host.workers.restartWorker('w-a2');
    const log = await received();
    const of = (op: string, workerId: string): Received | undefined => log.find((r) => r.op === op && r.workerId === workerId);
    assert.deepEqual(of('createWorker', 'w-a1'), {
      op: 'createWorker', workerId: 'w-a1', count: 2,
      mounts: [{ name: 'team-a/one', version: '1', target: 'env:ONE' }, { name: 'team-a/two', version: '1', target: 'file:two.json' }],
    });
    assert.deepEqual(of('createWorker', 'w-a2'), { op: 'createWorker', workerId: 'w-a2', count: 1, mounts: [{ name: 'team-a/two', version: '1', target: 'env:KEY' }] });
    assert.deepEqual(of('createWorker', 'w-plain'), { op: 'createWorker', workerId: 'w-plain', count: 0, mounts: [] });
    assert.deepEqual(of('restartWorker', 'w-a2'), { op: 'restartWorker', workerId: 'w-a2', count: 1, mounts: [{ name: 'team-a/two', version: '1', target: 'env:KEY' }] });
    // The record itself holds names only.
    const raw = JSON.stringify(log);
    for (const v of Object.values(values)) assert.ok(!raw.includes(v));
  });
});
