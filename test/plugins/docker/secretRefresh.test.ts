import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isWorkerManagerError, type SecretMount } from '@worker-manager/plugin-sdk';
import { resolveConfig } from '../../../plugins/docker/src/config.ts';
import { planContainer } from '../../../plugins/docker/src/containerPlan.ts';
import { LabelKeys } from '../../../plugins/docker/src/labels.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { parseReader, readerCommand, versionedValues } from '../../helpers/secretReader.ts';
import { budget } from '../../helpers/waitFor.ts';
import { docker, IMAGE, inspect, logText, longSpec, openHarness, secretsRoot, waitFor } from './helpers.ts';

const skip = await requireDocker();

describe('docker provider: where file secrets are mounted', () => {
  const plan = (secrets: SecretMount[]) =>
    planContainer({
      workerId: 'w1',
      spec: { image: 'x' },
      secrets,
      config: resolveConfig({}),
      keys: new LabelKeys('worker-manager'),
      owner: { 'worker-manager/host': 'h', 'worker-manager/instance': 'i' },
      epoch: '1',
      createdAt: '2026-01-01T00:00:00.000Z',
      filesDir: '/dev/shm/x/w1.1',
    });
  const file = (name: string, p: string): SecretMount => ({ strategy: 'file', name, version: '1', path: p, value: `value-of-${name}` });

  it('binds the folder of an absolute path, never the file, folding nested folders into the outermost', () => {
    const p = plan([file('a', '/etc/app/a'), file('b', '/etc/app/sub/b'), file('c', '/opt/x/c'), file('d', 'rel/d')]);
    const binds = (p.options.HostConfig.Mounts ?? []).map((m) => [m.Source, m.Target, m.ReadOnly]);
    assert.deepEqual(binds, [
      ['/dev/shm/x/w1.1/dir-0', '/etc/app', true],
      ['/dev/shm/x/w1.1/dir-1', '/opt/x', true],
      ['/dev/shm/x/w1.1/secrets', '/run/secrets', true],
    ]);
    assert.deepEqual(p.files.map((f) => f.rel), ['dir-0/a', 'dir-0/sub/b', 'dir-1/c', 'secrets/rel/d']);
    const label = p.options.Labels?.['worker-manager/secret-files'] ?? '';
    assert.deepEqual(JSON.parse(label), [
      ['a', '/etc/app/a', '/etc/app/a'],
      ['b', '/etc/app/sub/b', '/etc/app/sub/b'],
      ['c', '/opt/x/c', '/opt/x/c'],
      ['d', 'rel/d', '/run/secrets/rel/d'],
    ]);
    assert.ok(!JSON.stringify(p.options.Labels).includes('value-of-'), 'labels hold names and paths, never values');
  });

  it('refuses an absolute path whose folder is a system folder the bind would cover', () => {
    for (const p of ['/etc/token', '/token', '/usr/token']) {
      assert.throws(() => plan([file('t', p)]), (e: unknown) => {
        assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_VALIDATION', `${p}: ${String(e)}`);
        assert.equal(e.details?.['instancePath'], '/secrets/0/path');
        assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes('value-of-'));
        return true;
      });
    }
  });
});

describe('docker provider: secret refresh and restart with secrets', { skip, concurrency: true }, () => {
  it('replaces file secrets 100 times (every 100 ms) under readers in a tight loop: no failed or torn read, all end on the newest; then SIGHUP', { timeout: budget(180_000) }, async (t) => {
    const h = await openHarness(t);
    const values = versionedValues();
    // Three ways a file secret is mounted: under secretsMountPath, at an absolute path (its folder bound; read by a
    // non-root user), and in a Secret volume.
    const workers: Array<{ id: string; mount: (n: number) => SecretMount; read: string; extra?: Parameters<typeof longSpec>[1] }> = [
      { id: 'rel', mount: (n) => ({ strategy: 'file', name: 'token', version: String(n), path: 'app/token', value: values.value(n) }), read: 'app/token' },
      { id: 'abs', mount: (n) => ({ strategy: 'file', name: 'token', version: String(n), path: '/etc/app/token', value: values.value(n) }), read: '/etc/app/token', extra: { user: '1000:1000' } },
      {
        id: 'vol',
        mount: (n) => ({ strategy: 'volume', name: 'db', version: String(n), path: 'password', value: values.value(n) }),
        read: '/etc/db/password',
        extra: { volumes: [{ mountPath: '/etc/db', source: { type: 'Secret', secretName: 'db' } }] },
      },
    ];
    await Promise.all(
      workers.map((w) => h.proxy.createWorker({ workerId: w.id, spec: { image: IMAGE, command: readerCommand(w.read, values.length), ...w.extra }, secrets: [w.mount(0)] })),
    );
    await Promise.all(workers.map((w) => waitFor(async () => parseReader(await logText(h, w.id)).last === 0, `${w.id} to read version 0`)));
    // Every tenth version, every reader has read it before the next replaces it: proof that they keep reading while the
    // files change (a reader blocked by a replacement stalls the loop), however slowly a loaded machine runs them.
    const CHECK_EVERY = 10;
    const started = Date.now();
    for (let n = 1; n <= 100; n++) {
      const results = await Promise.all(workers.map((w) => h.proxy.refreshSecrets({ workerId: w.id, secrets: [w.mount(n)] })));
      for (const r of results) assert.equal(r.updated, 1);
      if (n % CHECK_EVERY === 0) await Promise.all(workers.map((w) => waitFor(async () => parseReader(await logText(h, w.id)).last === n, `${w.id} to read version ${n}`)));
      // The pacing (a replacement every 100 ms at most) is the load under test, not a wait for something.
      await sleep(Math.max(0, started + n * 100 - Date.now()));
    }
    for (const w of workers) {
      const report = await waitFor(async () => {
        const r = parseReader(await logText(h, w.id));
        return r.last === 100 ? r : undefined;
      }, `${w.id} to read version 100`);
      assert.equal(report.fails, 0, `${w.id}: failed reads`);
      assert.equal(report.partials, 0, `${w.id}: torn reads`);
      assert.ok(report.monotonic, `${w.id}: went back to an older version: ${report.versions.join(',')}`);
      const checked = Array.from({ length: 100 / CHECK_EVERY + 1 }, (_, i) => i * CHECK_EVERY);
      assert.deepEqual(checked.filter((v) => !report.versions.includes(v)), [], `${w.id} read continuously (saw ${report.versions.length} of 101 versions)`);
    }

    await Promise.all(workers.map((w) => h.proxy.refreshSecrets({ workerId: w.id, secrets: [w.mount(101)], signal: 'SIGHUP' })));
    for (const w of workers) {
      await waitFor(async () => parseReader(await logText(h, w.id)).hups.includes(101), `${w.id} to handle SIGHUP on version 101`);
      assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: w.id }), { phase: 'Running' }, `${w.id} survives its handled SIGHUP`);
    }

    const info = await inspect((await h.proxy.listWorkers({})).find((x) => x.workerId === 'rel')?.providerRef);
    const folder = info.Mounts.find((m) => m.Destination === '/run/secrets')?.Source ?? '';
    assert.equal(await readFile(path.join(folder, 'app', 'token'), 'utf8'), values.value(101));
    assert.equal((await stat(path.join(folder, 'app', 'token'))).mode & 0o777, 0o444);
    assert.deepEqual(await readdir(path.join(folder, 'app')), ['token'], 'no temp files are left behind');
  });

  it('restart with a new env secret recreates the container; same value or none restarts in place; values never in labels, names, logs or events', { timeout: budget(180_000) }, async (t) => {
    const h = await openHarness(t);
    const v = (n: number): string => `env-${n}-${randomBytes(8).toString('hex')}`;
    const values = [v(0), v(1)] as const;
    const envMount = (n: 0 | 1): SecretMount => ({ strategy: 'env', name: 'db', version: String(n), envName: 'DB_PASSWORD', value: values[n] });
    const fileMount: SecretMount = { strategy: 'file', name: 'cert', version: '1', path: 'cert.pem', value: `file-${values[0]}` };
    const created = await h.proxy.createWorker({ workerId: 'envy', spec: longSpec('envy', { labels: { team: 'blue' } }), secrets: [envMount(0), fileMount] });
    const printEnv = async (): Promise<string> => (await h.proxy.executeCommand({ workerId: 'envy', command: ['sh', '-c', 'printf %s "$DB_PASSWORD"'] })).stdout;
    assert.equal(await printEnv(), values[0]);

    const recreated = await h.proxy.restartWorker({ workerId: 'envy', secrets: [envMount(1)] });
    assert.equal(recreated.state.phase, 'Running');
    assert.notEqual(recreated.providerRef, created.providerRef, 'a new env value needs a new container');
    assert.deepEqual(recreated.labels, created.labels, 'the worker keeps its labels');
    assert.equal(recreated.createdAt, created.createdAt, 'and its creation time');
    assert.equal(await printEnv(), values[1], 'the recreated worker has the new env value');
    assert.equal((await h.proxy.executeCommand({ workerId: 'envy', command: ['cat', '/run/secrets/cert.pem'] })).stdout, fileMount.value, 'and its files');
    const owned = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${h.hostId}`] } });
    assert.deepEqual(owned.map((c) => c.Id), [recreated.providerRef], 'the old container is gone');

    const same = await h.proxy.restartWorker({ workerId: 'envy', secrets: [envMount(1)] });
    assert.equal(same.providerRef, recreated.providerRef, 'the same env value restarts in place');
    const plain = await h.proxy.restartWorker({ workerId: 'envy' });
    assert.equal(plain.providerRef, recreated.providerRef);
    assert.equal(await printEnv(), values[1], 'a restart without secrets keeps the environment the engine holds');

    const info = await inspect(recreated.providerRef);
    for (const value of [...values, fileMount.value]) {
      assert.ok(!JSON.stringify(info.Config.Labels).includes(value), 'no secret value in labels');
      assert.ok(!info.Name.includes(value), 'nor in the name');
      assert.ok(!JSON.stringify(h.logs).includes(value), 'nor in plugin logs');
      assert.ok(!JSON.stringify(h.events).includes(value), 'nor in events');
      assert.ok(!(await logText(h, 'envy')).includes(value), 'nor in the worker log');
    }
    const dir = path.join(secretsRoot, `wm-${h.hostId}-test`);
    assert.equal((await readdir(dir)).length, 1, 'one files folder while the worker lives');
    await h.proxy.terminateWorker({ workerId: 'envy', gracePeriodMs: 0 });
    assert.deepEqual(await readdir(dir), [], 'terminate removes it');
  });

  it('refuses a mount the worker does not have, an unknown signal and a removed worker, without echoing values', { timeout: budget(60_000) }, async (t) => {
    const h = await openHarness(t);
    const value = `nope-${randomBytes(6).toString('hex')}`;
    await h.proxy.createWorker({
      workerId: 'guard',
      spec: longSpec('guard'),
      secrets: [{ strategy: 'file', name: 'cert', version: '1', path: 'cert.pem', value: 'v1' }],
    });
    const refused = (code: string) => (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === code, String(e));
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(value));
      return true;
    };
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'file', name: 'x', version: '2', path: '/opt/elsewhere/x', value }] }), refused('WM_ERR_VALIDATION'));
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'file', name: 'cert', version: '2', path: '../../escape', value }] }), refused('WM_ERR_VALIDATION'));
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'file', name: 'cert', version: '2', path: 'cert.pem', value }], signal: 'SIGNOPE' }), refused('WM_ERR_VALIDATION'));
    assert.equal((await h.proxy.executeCommand({ workerId: 'guard', command: ['cat', '/run/secrets/cert.pem'] })).stdout, 'v1', 'a refused refresh changes nothing');
    const r = await h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'env', name: 'e', version: '2', envName: 'E', value }] });
    assert.equal(r.updated, 0, 'env mounts are ignored');
    await h.proxy.terminateWorker({ workerId: 'guard', gracePeriodMs: 0 });
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'file', name: 'cert', version: '2', path: 'cert.pem', value }] }), refused('WM_ERR_NOT_FOUND'));
  });
});
