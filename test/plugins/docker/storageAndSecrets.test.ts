import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isWorkerManagerError, type SecretMount } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { docker, inspect, logText, longSpec, openHarness, secretsRoot } from './helpers.ts';

const skip = await requireDocker();
const SECRET = 's3cr3t-VALUE-never-shown';

describe('docker provider: volumes and secrets', { skip, concurrency: true }, () => {
  it('mounts every volume kind: EmptyDir tmpfs (sized), allowed HostPath, PersistentVolume, Secret and ConfigMap read-only', async (t) => {
    const hostDir = await mkdtemp(path.join(os.tmpdir(), 'wm-docker-hostpath-'));
    t.after(() => rm(hostDir, { recursive: true, force: true }));
    await writeFile(path.join(hostDir, 'hello.txt'), 'from the host\n');
    const h = await openHarness(t, { allowedHostPaths: [hostDir], configMaps: { app: { 'app.conf': 'mode=test\n' } } });
    const claim = `wm-test-pv-${h.hostId}`;
    t.after(() => docker.getVolume(claim).remove().catch(() => {}));
    const secrets: SecretMount[] = [{ strategy: 'volume', name: 'db', version: 'v1', path: 'password', value: SECRET }];
    const w = await h.proxy.createWorker({
      workerId: 'vols',
      spec: longSpec('vols', {
        resources: { storageMiB: 8 },
        volumes: [
          { mountPath: '/scratch', source: { type: 'EmptyDir' } },
          { mountPath: '/small', source: { type: 'EmptyDir', sizeMiB: 2 } },
          { mountPath: '/host', source: { type: 'HostPath', path: hostDir }, readOnly: true },
          { mountPath: '/data', source: { type: 'PersistentVolume', claimName: claim } },
          { mountPath: '/etc/db', source: { type: 'Secret', secretName: 'db' } },
          { mountPath: '/etc/app', source: { type: 'ConfigMap', name: 'app' } },
        ],
      }),
      secrets,
    });
    const run = async (cmd: string): Promise<{ exitCode: number; stdout: string }> => h.proxy.executeCommand({ workerId: 'vols', command: ['sh', '-c', cmd] });
    assert.match((await run('busybox df -k /scratch /small | busybox awk \'NR>1 {print $2}\'')).stdout, /^8192\n2048\n$/, 'tmpfs sized from storageMiB and sizeMiB');
    assert.equal((await run('cat /host/hello.txt')).stdout, 'from the host\n');
    assert.notEqual((await run('touch /host/new')).exitCode, 0, 'a readOnly HostPath is read-only');
    assert.equal((await run('echo kept > /data/f && cat /data/f')).stdout, 'kept\n');
    assert.equal((await run('cat /etc/db/password')).stdout, SECRET);
    assert.notEqual((await run('touch /etc/db/x')).exitCode, 0, 'a Secret volume is read-only');
    assert.equal((await run('cat /etc/app/app.conf')).stdout, 'mode=test\n');
    assert.notEqual((await run('touch /etc/app/x')).exitCode, 0, 'a ConfigMap volume is read-only');
    const info = await inspect(w.providerRef);
    assert.ok(!JSON.stringify(info.Config.Labels).includes(SECRET), 'no secret value in labels');

    await h.proxy.terminateWorker({ workerId: 'vols', gracePeriodMs: 0 });
    const pv = await docker.getVolume(claim).inspect();
    assert.equal(pv.Labels?.['worker-manager/host'], h.hostId, 'the persistent volume carries the owner labels');
    const leftovers = await readdir(path.join(secretsRoot, `wm-${h.hostId}-test`)).catch(() => []);
    assert.deepEqual(leftovers, [], 'terminate removes the secret files');
  });

  it('refuses a HostPath outside the allowed prefixes with WM_ERR_VALIDATION', async (t) => {
    const h = await openHarness(t, { allowedHostPaths: ['/srv/allowed'] });
    for (const p of ['/etc', '/srv/allowed-not', '/srv/allowed/../../etc']) {
      await assert.rejects(h.proxy.createWorker({ workerId: 'hp', spec: longSpec('hp', { volumes: [{ mountPath: '/x', source: { type: 'HostPath', path: p } }] }) }), (e: unknown) => {
        assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_VALIDATION', `${p}: ${String(e)}`);
        assert.equal(e.details?.['instancePath'], '/spec/volumes/0/source/path');
        return true;
      });
    }
  });

  it('delivers env secrets as variables and file secrets as read-only files on a tmpfs; values never reach labels, events, logs or errors', async (t) => {
    const h = await openHarness(t);
    const secrets: SecretMount[] = [
      { strategy: 'env', name: 'token', version: '3', envName: 'API_TOKEN', value: SECRET },
      { strategy: 'file', name: 'key', version: '1', path: 'key.pem', value: `${SECRET}-file` },
      { strategy: 'file', name: 'abs', version: '1', path: '/etc/abs/secret', value: `${SECRET}-abs` },
    ];
    const w = await h.proxy.createWorker({ workerId: 'sec', spec: longSpec('sec', { secretRefs: [{ name: 'token', mount: 'env', envName: 'API_TOKEN' }] }), secrets });
    const run = async (cmd: string): Promise<string> => (await h.proxy.executeCommand({ workerId: 'sec', command: ['sh', '-c', cmd] })).stdout;
    assert.equal(await run('printf %s "$API_TOKEN"'), SECRET);
    assert.equal(await run('cat "$WM_SECRETS_DIR/key.pem"'), `${SECRET}-file`);
    assert.equal(await run('cat /etc/abs/secret'), `${SECRET}-abs`);
    assert.match(await run('touch /run/secrets/x 2>&1; echo $?'), /[1-9]\d*\n$/, 'the secrets folder is read-only');
    const info = await inspect(w.providerRef);
    const secretsMount = info.Mounts.find((m) => m.Destination === '/run/secrets');
    assert.ok(secretsMount !== undefined && secretsMount.RW === false, 'mounted read-only');
    assert.ok(secretsMount.Source.startsWith('/dev/shm/'), `the files live on the host tmpfs (${secretsMount.Source})`);
    assert.ok(!JSON.stringify(info.Config.Labels).includes(SECRET), 'no secret value in labels');
    // A second create with another spec fails: the error must not echo the secret.
    await assert.rejects(h.proxy.createWorker({ workerId: 'sec', spec: longSpec('other'), secrets }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_ALREADY_EXISTS');
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(SECRET));
      return true;
    });
    await h.proxy.terminateWorker({ workerId: 'sec', gracePeriodMs: 0 });
    assert.ok(!JSON.stringify(h.events).includes(SECRET), 'no secret value in events');
    assert.ok(!JSON.stringify(h.logs).includes(SECRET), 'no secret value in plugin logs');
    assert.ok(!(await logText(h, 'sec').catch(() => '')).includes(SECRET));
    const dir = path.join(secretsRoot, `wm-${h.hostId}-test`);
    assert.deepEqual(await readdir(dir).catch(() => []), [], 'terminate removes the secret files');
    await assert.rejects(readFile(path.join(dir, 'x')));
  });
});
