import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { SecretMount } from '@worker-manager/plugin-sdk';
import { filesUnder, finalState, openHarness } from './helpers.ts';

describe('process plugin: secrets', () => {
  it('delivers env and file secrets, keeps their values off disk except the secret file, and removes it on terminate', async (t) => {
    const h = await openHarness(t);
    const envValue = `env-secret-${randomBytes(8).toString('hex')}`;
    const fileValue = `file-secret-${randomBytes(8).toString('hex')}`;
    const secrets: SecretMount[] = [
      { strategy: 'env', name: 'db', version: '4', envName: 'DB_PASSWORD', value: envValue },
      { strategy: 'file', name: 'tls', version: '2', path: '/tls/key.pem', value: fileValue },
    ];
    // The worker proves it got both, by length only: its log must not hold the values.
    const script = 'printf %s "$DB_PASSWORD" | wc -c; wc -c < "$WM_SECRETS_DIR/tls/key.pem"; exec sleep 600';
    await h.proxy.createWorker({ workerId: 'vault', spec: { command: ['sh', '-c', script] }, secrets });

    const env = await h.proxy.executeCommand({ workerId: 'vault', command: ['sh', '-c', 'printf %s "$DB_PASSWORD"'] });
    assert.equal(env.stdout, envValue, 'env secret in the worker environment (and in exec)');
    const file = await h.proxy.executeCommand({ workerId: 'vault', command: ['sh', '-c', 'cat "$WM_SECRETS_DIR/tls/key.pem"'] });
    assert.equal(file.stdout, fileValue, 'file secret readable at $WM_SECRETS_DIR/<path>');

    const secretFile = path.join(h.stateDir, 'workers', 'vault', 'secrets', 'tls', 'key.pem');
    assert.equal((await stat(secretFile)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(path.dirname(secretFile)))).mode & 0o777, 0o700);

    const holders = async (value: string): Promise<string[]> =>
      (await filesUnder(h.stateDir)).filter((f) => f.content.includes(value)).map((f) => path.relative(h.stateDir, f.file));
    assert.deepEqual(await holders(envValue), [], 'the env secret is nowhere under the state dir');
    assert.deepEqual(await holders(fileValue), ['workers/vault/secrets/tls/key.pem'], 'the file secret is only in its file');
    const meta = (await filesUnder(h.stateDir)).find((f) => f.file.endsWith('meta.json'));
    assert.ok(meta !== undefined && meta.content.includes('"DB_PASSWORD"'), 'meta.json records where secrets went (names, not values)');

    await h.proxy.terminateWorker({ workerId: 'vault' });
    await assert.rejects(stat(secretFile), { code: 'ENOENT' });
    assert.deepEqual(await holders(fileValue), []);
    assert.deepEqual(await holders(envValue), []);
  });

  it('a secret file is removed when a worker that already exited is terminated', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({
      workerId: 'brief',
      spec: { command: ['true'] },
      secrets: [{ strategy: 'file', name: 'token', version: '1', path: 'token', value: 'short-lived' }],
    });
    await finalState(h, 'brief');
    const file = path.join(h.stateDir, 'workers', 'brief', 'secrets', 'token');
    assert.equal((await stat(file)).isFile(), true, 'still there until terminate');
    const r = await h.proxy.terminateWorker({ workerId: 'brief' });
    assert.equal(r.alreadyGone, true);
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });

  it('refuses a secret path that leaves the secrets folder, without echoing the value', async (t) => {
    const h = await openHarness(t);
    const value = `escape-${randomBytes(6).toString('hex')}`;
    await assert.rejects(
      h.proxy.createWorker({ workerId: 'escape', spec: { command: ['true'] }, secrets: [{ strategy: 'file', name: 'x', version: '1', path: '../../meta.json', value }] }),
      (e: Error & { code?: string; details?: unknown }) => {
        assert.equal(e.code, 'WM_ERR_VALIDATION');
        assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(value));
        return true;
      },
    );
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'escape' }), { code: 'WM_ERR_NOT_FOUND' });
  });

  it('restart keeps the secrets of a running worker, and refuses once they are gone', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({
      workerId: 'keeper',
      spec: { command: ['sleep', '600'] },
      secrets: [{ strategy: 'env', name: 'db', version: '1', envName: 'PASSWORD', value: 'kept' }],
    });
    await h.proxy.restartWorker({ workerId: 'keeper' });
    const r = await h.proxy.executeCommand({ workerId: 'keeper', command: ['sh', '-c', 'printf %s "$PASSWORD"'] });
    assert.equal(r.stdout, 'kept');
    await h.proxy.terminateWorker({ workerId: 'keeper' });
    await assert.rejects(h.proxy.restartWorker({ workerId: 'keeper' }), { code: 'WM_ERR_CONFLICT' });
  });
});
