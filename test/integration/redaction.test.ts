import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { SecretMount } from '@worker-manager/plugin-sdk';
import { createApiServer } from '../../host/src/api/createApiServer.ts';
import { dispatchWorkerCommand } from '../../host/src/bus/commands/dispatchWorkerCommand.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';
import { secretValue, startBrokerHost, STORE_KEY } from '../host/secrets/brokerFixtures.ts';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The ways a value could leak: as is, base64 (a Buffer logged as JSON), or hex. */
function forms(value: string): string[] {
  return [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex')];
}

/** Labels of the secrets any form of which appears in `text`. */
function leaks(text: string, secrets: ReadonlyMap<string, string>): string[] {
  return [...secrets].filter(([, value]) => forms(value).some((f) => text.includes(f))).map(([label]) => label);
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('redaction: no secret value in anything the host emits', () => {
  it('the scanner finds a value that is there', () => {
    const secrets = new Map([['x', secretValue('x')], ['y', secretValue('y')]]);
    assert.deepEqual(leaks(`{"msg":"oops","v":"${secrets.get('x') ?? ''}"}`, secrets), ['x']);
    assert.deepEqual(leaks(`blob ${Buffer.from(secrets.get('y') ?? '').toString('base64')}`, secrets), ['y']);
    assert.deepEqual(leaks('nothing here', secrets), []);
  });

  it('creates workers with secrets, fails operations around them, and finds no value in logs, events, errors, responses or state files', { timeout: budget(180_000) }, async (t) => {
    const h = await startBrokerHost();
    t.after(() => h.stop());
    const secrets = new Map<string, string>([
      ['env', secretValue('env')],
      ['file', secretValue('file')],
      ['mapUser', secretValue('mapuser')],
      ['mapPassword', secretValue('mappw')],
      ['teamA', secretValue('teama')],
      ['handed', secretValue('handed')],
      ['storeKey', STORE_KEY],
    ]);
    const s = (label: string): string => secrets.get(label) ?? assert.fail(label);
    const vault = h.host.registry.credentials('vault');
    await vault.putSecret({ name: 'app/env', value: s('env') });
    await vault.putSecret({ name: 'app/file', value: s('file') });
    await vault.putSecret({ name: 'app/map', value: { user: s('mapUser'), password: s('mapPassword') } });
    await vault.putSecret({ name: 'team-a/db', value: s('teamA') });

    const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, rotation: h.host.rotation });
    t.after(() => app.close());
    const emitted: string[] = [];
    const api = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<{ statusCode: number; json: () => unknown }> => {
      const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
      emitted.push(`${method} ${url} -> ${res.statusCode} ${JSON.stringify(res.headers)} ${res.body}`);
      return res;
    };
    const errors: unknown[] = [];
    const fails = async (what: string, p: Promise<unknown>): Promise<void> => {
      try {
        await p;
      } catch (error) {
        errors.push(error);
        return;
      }
      assert.fail(`${what} should have failed`);
    };

    const refs = [
      { name: 'app/env', mount: 'env' as const, envName: 'APP_ENV' },
      { name: 'app/file', mount: 'file' as const, path: 'app.txt' },
      { name: 'app/map', mount: 'env' as const, envName: 'MAP' },
    ];
    // Workers with secrets, through the service, the API and the bus.
    await h.host.workers.createWorker({ workerId: 'w-r1', spec: { command: ['sleep', '600'], secretRefs: refs }, correlationId: 'corr-r1' });
    // Waited for until it runs (201): commands run in it below.
    const created = await api('POST', `/v1/workers?wait=running&waitTimeoutMs=${Math.min(budget(60_000), 600_000)}`, { workerId: 'w-r2', spec: { command: ['sleep', '600'], secretRefs: refs } });
    assert.equal(created.statusCode, 201, JSON.stringify(created.json()));
    emitted.push(JSON.stringify(await dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-bus', params: { workerId: 'w-r3', spec: { command: ['sleep', '600'], secretRefs: refs } } })));
    // The delivery itself worked (a scan of a host that delivered nothing would prove nothing).
    // Compared by digest, so that neither the command nor its output carries a value.
    // Command deadlines are generous: a fork on a loaded machine can take seconds.
    const digest = async (script: string): Promise<string> => (await h.host.workers.executeCommand('w-r2', ['sh', '-c', `${script} | sha256sum`], 60_000)).stdout.split(' ')[0] ?? '';
    assert.equal(await digest('printf %s "$APP_ENV"'), sha256(s('env')));
    assert.equal(await digest('printf %s "$MAP_PASSWORD"'), sha256(s('mapPassword')));
    assert.equal(await digest('cat "$WM_SECRETS_DIR/app.txt"'), sha256(s('file')));

    // Reads of what was created.
    for (const url of ['/v1/workers', '/v1/workers/w-r1', '/v1/workers/w-r2', '/v1/secrets/app%2Fenv/versions', '/v1/secrets/app%2Fmap/versions', '/v1/workers/w-r1/logs']) {
      const res = await api('GET', url);
      assert.ok(res.statusCode < 500, `${url}: ${JSON.stringify(res.json())}`);
    }

    // Failures around secrets, on every path.
    await fails('keys on a string', h.host.workers.createWorker({ workerId: 'w-f1', spec: { command: ['true'], secretRefs: [{ name: 'app/env', mount: 'env', keys: ['x'] }] } }));
    await fails('missing key', h.host.workers.createWorker({ workerId: 'w-f2', spec: { command: ['true'], secretRefs: [{ name: 'app/map', mount: 'env', keys: ['nope'] }] } }));
    await fails('unknown version', h.host.workers.createWorker({ workerId: 'w-f3', spec: { command: ['true'], secretRefs: [{ name: 'app/env', mount: 'env', version: '42' }] } }));
    await fails('other tenant', h.host.workers.createWorker({ workerId: 'w-f4', spec: { command: ['true'], secretRefs: [{ name: 'team-a/db', mount: 'env' }] } }));
    await fails('provider refuses after resolution', h.host.workers.createWorker({ workerId: 'w-f5', spec: { command: ['true'], workingDir: '../..', secretRefs: refs } }));
    await fails('mount path escapes', h.host.workers.createWorker({ workerId: 'w-f6', spec: { command: ['true'], secretRefs: [{ name: 'app/file', mount: 'file', path: '../../escape' }] } }));
    await fails('clashing targets', h.host.workers.createWorker({ workerId: 'w-f7', spec: { command: ['true'], secretRefs: [{ name: 'app/env', mount: 'env', envName: 'MAP_USER' }, refs[2] as (typeof refs)[number]] } }));
    const handed: SecretMount[] = [{ strategy: 'file', name: 'app/file', version: '7', path: 'app.txt', value: s('handed') }];
    await fails('refresh of an unknown worker', h.host.workers.refreshSecrets('w-unknown', handed, { correlationId: 'corr-refresh' }));
    await fails('refresh with a bad signal', h.host.workers.refreshSecrets('w-r1', handed, { signal: 'HUP' }));
    await fails('refresh with a malformed mount', h.host.workers.refreshSecrets('w-r1', [{ strategy: 'bogus', name: 'app/file', version: '7', path: 'x', value: s('handed') } as unknown as SecretMount]));
    await fails('refresh escaping the folder', h.host.workers.refreshSecrets('w-r1', [{ strategy: 'file', name: 'app/file', version: '7', path: '../../x', value: s('handed') }]));
    await fails('restart of an unknown worker with secrets', h.host.workers.restartWithSecrets('w-unknown', handed, {}));
    await fails('bus create with keys on a string', dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-bus-2', params: { spec: { command: ['true'], secretRefs: [{ name: 'app/env', mount: 'env', keys: ['x'] }] } } }));
    await fails('bus create of another tenant', dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-bus-3', tenant: 'team-b', params: { spec: { command: ['true'], secretRefs: [{ name: 'team-a/db', mount: 'env' }] } } }));
    for (const [workerId, secretRefs] of [['w-f8', [{ name: 'app/env', mount: 'env', keys: ['x'] }]], ['w-f9', [{ name: 'team-a/db', mount: 'env' }]], ['w-f10', [{ name: 'app/env', mount: 'env', version: '42' }]]] as const) {
      const res = await api('POST', '/v1/workers', { workerId, spec: { command: ['true'], secretRefs } });
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${workerId}: ${res.statusCode}`);
    }
    assert.ok((await api('POST', '/v1/workers', { workerId: 'w-f11', spec: { command: ['true'], secretRefs: [{ name: 'app/env', mount: 'env', value: s('env') }] } })).statusCode === 400, 'an unknown field is refused');
    assert.ok((await api('POST', '/v1/workers/w-nope/exec', { command: ['true'] })).statusCode === 404);

    // A restart re-resolves and re-delivers; a refresh delivers new material in place.
    await h.host.workers.restartWorker('w-r1', { correlationId: 'corr-restart' });
    await waitFor(async () => (await h.host.workers.getStatus('w-r1')).state.phase === 'Running', 'w-r1 to run again');
    await h.host.workers.refreshSecrets('w-r1', handed, { correlationId: 'corr-refresh-ok' });
    assert.equal(errors.length, 14);

    // A manual rotation through the API: the file-mounted workers get the generated value in place.
    const rotated = await api('POST', '/v1/secrets/app%2Ffile/rotate', {});
    assert.equal(rotated.statusCode, 200, JSON.stringify(rotated.json()));
    const current = await vault.getSecret({ name: 'app/file' });
    assert.equal(current.version, '2');
    secrets.set('rotated', typeof current.value === 'string' ? current.value : assert.fail('a string secret'));
    const rotatedDigest = sha256(s('rotated'));
    await waitFor(async () => (await h.host.workers.executeCommand('w-r3', ['sh', '-c', 'cat "$WM_SECRETS_DIR/app.txt" | sha256sum'], 60_000)).stdout.startsWith(rotatedDigest), 'w-r3 to read the rotated file');

    // State files, while the workers still run; only the provider's own secret files may hold values.
    const local = h.host.registry.instance('local').stateDir ?? assert.fail('no state dir');
    const isProviderSecretFile = (file: string): boolean => file.startsWith(path.join(local, 'workers') + path.sep) && file.split(path.sep).includes('secrets');
    const files = await filesUnder(h.dir);
    const providerSecretFiles = files.filter(isProviderSecretFile);
    assert.ok(providerSecretFiles.length >= 3, 'the workers have their secret files (the exclusion below is not vacuous)');
    for (const file of files) {
      if (isProviderSecretFile(file) || file === path.join(h.dir, 'wm.yaml')) continue;
      const text = await readFile(file, 'latin1');
      assert.deepEqual(leaks(text, secrets), [], `${path.relative(h.dir, file)} holds a secret`);
    }

    const deletedFrom = h.events.length;
    for (const workerId of ['w-r1', 'w-r2', 'w-r3']) {
      const res = await api('DELETE', `/v1/workers/${workerId}?gracePeriodMs=0`);
      assert.equal(res.statusCode, 200);
    }
    // What the terminations emit (their events and log lines) is part of what is scanned: wait for the last of it.
    await waitFor(
      () => ['w-r1', 'w-r2', 'w-r3'].every((id) => h.events.slice(deletedFrom).some((e) => e.subject === id && (e.busSubject === 'ci.worker.terminated' || e.busSubject === 'ci.worker.failed'))),
      'the terminal events of w-r1, w-r2 and w-r3',
    );

    // Everything emitted: log lines, bus events, errors as thrown and as serialised, API responses.
    assert.ok(h.logs.length > 20 && h.events.length > 5, `${h.logs.length} log lines, ${h.events.length} events`);
    for (const line of h.logs) assert.deepEqual(leaks(line, secrets), [], `log line leaks: ${line.slice(0, 300)}`);
    for (const event of h.events) assert.deepEqual(leaks(JSON.stringify(event), secrets), [], `event leaks: ${event.type}`);
    for (const error of errors) {
      const e = error as { message?: string; stack?: string; toJSON?: () => unknown; details?: unknown; cause?: unknown };
      const text = [e.message, e.stack, JSON.stringify(e.toJSON?.() ?? e), JSON.stringify(e.details), String(e.cause)].join('\n');
      assert.deepEqual(leaks(text, secrets), [], `error leaks: ${e.message ?? ''}`);
    }
    for (const response of emitted) assert.deepEqual(leaks(response, secrets), [], `response leaks: ${response.slice(0, 300)}`);
  });
});
