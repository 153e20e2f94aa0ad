import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isWorkerManagerError, type SecretMount } from '@worker-manager/plugin-sdk';
import { parseReader, readerCommand, versionedValues } from '../../helpers/secretReader.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { budget } from '../../helpers/waitFor.ts';
import { filesUnder, logText, openHarness, waitFor } from './helpers.ts';

const fileMount = (value: string, version: number): SecretMount => ({ strategy: 'file', name: 'app-token', version: String(version), path: 'app/token', value });

describe('process plugin: secret refresh and restart with secrets', () => {
  it('replaces a file secret 100 times (every 100 ms) under readers in a tight loop: no failed or torn read, all end on the newest', { timeout: budget(120_000) }, async (t) => {
    const h = await openHarness(t);
    const values = versionedValues();
    const ids = ['reader-a', 'reader-b'];
    for (const id of ids) {
      await h.proxy.createWorker({ workerId: id, spec: { command: readerCommand('app/token', values.length) }, secrets: [fileMount(values.value(0), 0)] });
    }
    // Every reader has read each version before the next replaces it: proof that they read while the file changes
    // (a reader blocked by a replacement would stall the loop), however slowly a loaded machine runs them.
    const caughtUp = (n: number): Promise<boolean> => waitFor(async () => {
      const seen = await Promise.all(ids.map(async (id) => parseReader(await logText(h, id)).last));
      return seen.every((last) => last === n);
    }, () => `every reader to read version ${n}`);
    await caughtUp(0);
    const started = Date.now();
    for (let n = 1; n <= 100; n++) {
      const results = await Promise.all(ids.map((workerId) => h.proxy.refreshSecrets({ workerId, secrets: [fileMount(values.value(n), n)] })));
      for (const r of results) assert.equal(r.updated, 1);
      await caughtUp(n);
      // The pacing (a replacement every 100 ms at most) is the load under test, not a wait for something.
      await sleep(Math.max(0, started + n * 100 - Date.now()));
    }
    for (const id of ids) {
      const report = await waitFor(async () => {
        const r = parseReader(await logText(h, id));
        return r.last === 100 ? r : undefined;
      }, `${id} to read version 100`);
      assert.equal(report.fails, 0, `${id}: failed reads`);
      assert.equal(report.partials, 0, `${id}: torn reads`);
      assert.ok(report.monotonic, `${id}: a reader went back to an older version: ${report.versions.join(',')}`);
      assert.deepEqual(report.versions, Array.from({ length: 101 }, (_, v) => v), `${id} read every version, in order`);
    }
    const file = path.join(h.stateDir, 'workers', 'reader-a', 'secrets', 'app', 'token');
    assert.equal(await readFile(file, 'utf8'), values.value(100));
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'a replaced file keeps mode 0600');
    const leftovers = (await filesUnder(path.dirname(file))).map((f) => path.basename(f.file));
    assert.deepEqual(leftovers, ['token'], 'no temp files are left behind');
  });

  it('sends the signal to the command after the file is replaced, and the worker keeps running', { timeout: budget(60_000) }, async (t) => {
    const h = await openHarness(t);
    const values = versionedValues(64);
    await h.proxy.createWorker({ workerId: 'hup', spec: { command: ['sh', '-c', `trap 'echo "HUP $(cat "$WM_SECRETS_DIR/app/token" | cut -c1-4)"' HUP; echo ready; while :; do sleep 0.05; done`] }, secrets: [fileMount(values.value(1), 1)] });
    // A create returns once the command runs, not once it has set its trap: a SIGHUP before that kills the shell,
    // as it would any program that has not yet installed its handler (seen under load in CI). A real rotation comes
    // long after start; the test waits for the command to say it is ready.
    await waitFor(async () => (await logText(h, 'hup')).includes('ready'), 'the command to set its trap');
    await h.proxy.refreshSecrets({ workerId: 'hup', secrets: [fileMount(values.value(2), 2)], signal: 'SIGHUP' });
    await waitFor(async () => (await logText(h, 'hup')).includes('HUP 0002'), 'the worker to handle SIGHUP with the new file');
    await h.proxy.refreshSecrets({ workerId: 'hup', secrets: [fileMount(values.value(3), 3)], signal: 'SIGHUP' });
    await waitFor(async () => (await logText(h, 'hup')).includes('HUP 0003'), 'a second SIGHUP');
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: 'hup' }), { phase: 'Running' }, 'neither the wrapper nor the command ended');
    assert.deepEqual((await logText(h, 'hup')).trim().split('\n'), ['ready', 'HUP 0002', 'HUP 0003'], 'each signal arrived once');
  });

  it('refuses a path outside the secrets folder and an unknown signal, without echoing the value', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'guard', spec: { command: ['sleep', '600'] }, secrets: [fileMount('v1', 1)] });
    const value = `escape-${randomBytes(6).toString('hex')}`;
    const refused = (code: string) => (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === code, String(e));
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(value));
      return true;
    };
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [{ strategy: 'file', name: 'x', version: '2', path: '../meta.json', value }] }), refused('WM_ERR_VALIDATION'));
    await assert.rejects(h.proxy.refreshSecrets({ workerId: 'guard', secrets: [fileMount(value, 2)], signal: 'SIGNOPE' }), refused('WM_ERR_VALIDATION'));
    const meta = await readFile(path.join(h.stateDir, 'workers', 'guard', 'meta.json'), 'utf8');
    assert.ok(meta.includes('"pid"') && !meta.includes(value), 'meta.json untouched');
  });

  it('restart with secrets gives the worker the new env value; without them an ended env-secret worker is refused', { timeout: budget(60_000) }, async (t) => {
    const h = await openHarness(t);
    const v = (n: number): string => `env-${n}-${randomBytes(6).toString('hex')}`;
    const envMount = (value: string, version: number): SecretMount => ({ strategy: 'env', name: 'db', version: String(version), envName: 'DB_PASSWORD', value });
    const values = [v(0), v(1), v(2), v(3)] as const;
    await h.proxy.createWorker({ workerId: 'envy', spec: { command: ['sleep', '600'] }, secrets: [envMount(values[0], 0), fileMount(values[0], 0)] });
    const printEnv = async (): Promise<string> => (await h.proxy.executeCommand({ workerId: 'envy', command: ['sh', '-c', 'printf %s "$DB_PASSWORD"'] })).stdout;
    const printFile = async (): Promise<string> => (await h.proxy.executeCommand({ workerId: 'envy', command: ['sh', '-c', 'cat "$WM_SECRETS_DIR/app/token"'] })).stdout;

    const restarted = await h.proxy.restartWorker({ workerId: 'envy', secrets: [envMount(values[1], 1)] });
    assert.equal(restarted.state.phase, 'Running');
    assert.equal(await printEnv(), values[1], 'the restarted command has the new env value');
    assert.equal(await printFile(), values[0], 'a file secret not in the restart stays as it was');
    const meta = JSON.parse(await readFile(path.join(h.stateDir, 'workers', 'envy', 'meta.json'), 'utf8')) as { secrets: Array<{ name: string; version: string }> };
    assert.deepEqual(meta.secrets.map((s) => [s.name, s.version]).sort(), [['app-token', '0'], ['db', '1']], 'meta.json records the delivered versions');

    await h.proxy.restartWorker({ workerId: 'envy' });
    assert.equal(await printEnv(), values[1], 'a plain restart of a live worker keeps its environment');

    await h.proxy.terminateWorker({ workerId: 'envy', gracePeriodMs: 0 });
    await assert.rejects(h.proxy.restartWorker({ workerId: 'envy' }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_CONFLICT', String(e));
      assert.deepEqual(e.details?.['missing'], ['db', 'app-token']);
      return true;
    });
    await assert.rejects(h.proxy.restartWorker({ workerId: 'envy', secrets: [envMount(values[2], 2)] }), { code: 'WM_ERR_CONFLICT' }, 'the file secret is gone too');
    await h.proxy.restartWorker({ workerId: 'envy', secrets: [envMount(values[3], 3), fileMount(values[3], 3)] });
    assert.equal(await printEnv(), values[3], 'an ended worker restarts when the caller brings every secret');
    assert.equal(await printFile(), values[3]);

    const holders = async (value: string): Promise<string[]> =>
      (await filesUnder(h.stateDir)).filter((f) => f.content.includes(value)).map((f) => path.relative(h.stateDir, f.file));
    for (const value of values) assert.deepEqual(await holders(value), value === values[3] ? ['workers/envy/secrets/app/token'] : [], 'values only in the secret file');
    assert.ok(!JSON.stringify(h.logs).includes(values[1]) && !JSON.stringify(h.events).includes(values[1]), 'no value in plugin logs or events');
  });
});
