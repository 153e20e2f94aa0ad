import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { SecretMount, SecretRef } from '@worker-manager/plugin-sdk';
import { createApiServer } from '../../host/src/api/createApiServer.ts';
import { dispatchWorkerCommand } from '../../host/src/bus/commands/dispatchWorkerCommand.ts';
import { startSecretsManagerDouble } from '../doubles/awsSecretsManager.ts';
import { startKeycloakDouble } from '../doubles/keycloakAdmin.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../helpers/keycloakHostYaml.ts';
import { VaultDouble } from '../doubles/vault.ts';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';
import { secretValue, startBrokerHost, STORE_KEY } from '../host/secrets/brokerFixtures.ts';
import { pluginPolicy } from '../plugins/credentials-vault/helpers.ts';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The ways a value could leak: as is, base64 (a Buffer logged as JSON), or hex. */
function forms(value: string): string[] {
  return [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex')];
}

/** Labels of the secrets any form of which appears in `text`. */
function leaks(text: string, secrets: ReadonlyMap<string, string>): string[] {
  return [...secrets].filter(([, value]) => forms(value).some((f) => text.includes(f))).map(([label]) => label);
}

/** Everything a failure exposes: message, stack, its JSON, details and cause. */
function errorText(error: unknown): string {
  const e = error as { message?: string; stack?: string; toJSON?: () => unknown; details?: unknown; cause?: unknown };
  return [e.message, e.stack, JSON.stringify(e.toJSON?.() ?? e), JSON.stringify(e.details), String(e.cause)].join('\n');
}

/** Fails naming the first log line, event, error or API response that holds any form of a value in `secrets`. */
function assertNoLeak(emitted: { logs: readonly string[]; events: readonly unknown[]; errors: readonly unknown[]; responses: readonly string[] }, secrets: ReadonlyMap<string, string>): void {
  for (const line of emitted.logs) assert.deepEqual(leaks(line, secrets), [], `log line leaks: ${line.slice(0, 300)}`);
  for (const event of emitted.events) assert.deepEqual(leaks(JSON.stringify(event), secrets), [], `event leaks: ${(event as { type?: string }).type ?? ''}`);
  for (const error of emitted.errors) assert.deepEqual(leaks(errorText(error), secrets), [], `error leaks: ${(error as { message?: string }).message ?? ''}`);
  for (const response of emitted.responses) assert.deepEqual(leaks(response, secrets), [], `response leaks: ${response.slice(0, 300)}`);
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

/** What one scan collects besides the host's logs and events: the API responses and the errors failures threw. */
interface Scan {
  responses: string[];
  errors: unknown[];
  /** A call through `app.inject`; its response (status, headers, body) is kept for the scan. */
  api(method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<{ statusCode: number; json: () => unknown }>;
  /** `p` must fail; its error is kept for the scan. */
  fails(what: string, p: Promise<unknown>): Promise<void>;
}

function startScan(app: FastifyInstance): Scan {
  const responses: string[] = [];
  const errors: unknown[] = [];
  return {
    responses,
    errors,
    async api(method, url, payload) {
      const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }) });
      responses.push(`${method} ${url} -> ${res.statusCode} ${JSON.stringify(res.headers)} ${res.body}`);
      return res;
    },
    async fails(what, p) {
      try {
        await p;
      } catch (error) {
        errors.push(error);
        return;
      }
      assert.fail(`${what} should have failed`);
    },
  };
}

/**
 * Every file in the host's folder, while the workers still run, but its config and the process provider's (instance
 * `local`) own secret files, which must hold values and of which there are at least `providerFiles`: none may hold
 * a form of a value in `secrets`. Returns the files read.
 */
async function assertStateFilesClean(h: TestHost, secrets: () => ReadonlyMap<string, string>, providerFiles: number): Promise<string[]> {
  const local = h.host.registry.instance('local').stateDir ?? assert.fail('no state dir');
  const isProviderSecretFile = (file: string): boolean => file.startsWith(path.join(local, 'workers') + path.sep) && file.split(path.sep).includes('secrets');
  const files = await filesUnder(h.dir);
  assert.ok(files.filter(isProviderSecretFile).length >= providerFiles, 'the workers have their secret files (the exclusion below is not vacuous)');
  const scanned = files.filter((file) => !isProviderSecretFile(file) && file !== path.join(h.dir, 'wm.yaml'));
  for (const file of scanned) assert.deepEqual(leaks(await readFile(file, 'latin1'), secrets()), [], `${path.relative(h.dir, file)} holds a secret`);
  return scanned;
}

/** Terminates the workers through the API and waits for their terminal events: what they emit is scanned too. */
async function terminateAll(h: TestHost, scan: Scan, workerIds: readonly string[]): Promise<void> {
  const from = h.events.length;
  for (const workerId of workerIds) assert.equal((await scan.api('DELETE', `/v1/workers/${workerId}?gracePeriodMs=0`)).statusCode, 200);
  await waitFor(
    () => workerIds.every((id) => h.events.slice(from).some((e) => e.subject === id && (e.busSubject === 'ci.worker.terminated' || e.busSubject === 'ci.worker.failed'))),
    `the terminal events of ${workerIds.join(', ')}`,
  );
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
    const scan = startScan(app);
    const { api, fails, errors } = scan;

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
    scan.responses.push(JSON.stringify(await dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-bus', params: { workerId: 'w-r3', spec: { command: ['sleep', '600'], secretRefs: refs } } })));
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
    await assertStateFilesClean(h, () => secrets, 3);
    await terminateAll(h, scan, ['w-r1', 'w-r2', 'w-r3']);

    // Everything emitted: log lines, bus events, errors as thrown and as serialised, API responses.
    assert.ok(h.logs.length > 20 && h.events.length > 5, `${h.logs.length} log lines, ${h.events.length} events`);
    assertNoLeak({ logs: h.logs, events: h.events, errors, responses: scan.responses }, secrets);
  });
});

// Issue 16: the same scan over the two remote stores, each through its real plugin and client library against its
// protocol double: credentials-vault (instance `kv`) and credentials-aws-secrets-manager (instance `sm`). Besides the
// values, their credentials are canaries too (the Vault token, the AWS secret access key), and the failures are the
// backends' own: Vault sealed, refusing a path, failing a write; AWS denying a call, throttling, and answering a write
// with an error that echoes the value it was sent (the plugin promises to strip it).
describe('redaction with Vault and AWS Secrets Manager: no value or credential in anything the host emits', () => {
  it('creates workers with secrets of both stores, fails operations around them, rotates, and finds no value in logs, events, errors, responses or state files', { timeout: budget(240_000) }, async (t) => {
    const vault = await VaultDouble.start();
    t.after(() => vault.close());
    vault.setPolicy('wm', pluginPolicy('wm'));
    const vaultToken = vault.createToken({ policies: ['wm'] });
    const awsKeys = { accessKeyId: 'AKIAWMREDACTIONKEY01', secretAccessKey: `wm-redaction-${randomUUID()}` };
    const aws = await startSecretsManagerDouble({ principals: [awsKeys] });
    t.after(() => aws.close());
    // The token file is the operator's, outside the host's state folder (which is scanned).
    const credsDir = await mkdtemp(path.join(os.tmpdir(), 'wm-redaction-creds-'));
    t.after(() => rm(credsDir, { recursive: true, force: true }));
    const tokenFile = path.join(credsDir, 'vault-token');
    await writeFile(tokenFile, `${vaultToken}\n`, { mode: 0o600 });
    const PATH = process.env['PATH'] ?? '/usr/bin:/bin';
    const h = await startTestHost(
      `
host: { id: redact-remote, stateDir: \${DIR}/state }
secrets:
  cacheTtlMs: 5000
  tenants:
    - { tenant: team-a, names: ["team-a/*"] }
plugins:
  - name: credentials-vault
    package: ${repoRoot}plugins/credentials-vault
  - name: aws-secrets
    package: ${repoRoot}plugins/credentials-aws-secrets-manager
    env: { AWS_ACCESS_KEY_ID: "\${KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 2, callTimeoutMs: 60000 }
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH}" }
instances:
  - name: kv
    plugin: credentials-vault
    config: { address: "${vault.address}", pathPrefix: wm, auth: { method: token, token: { file: ${tokenFile} } }, readRetries: 1 }
  - name: sm
    plugin: aws-secrets
    config: { region: ${aws.region}, endpoint: "${aws.url}", retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 20 } }
  - { name: local, plugin: process, default: true }
`,
      { env: { PATH, KEY_ID: awsKeys.accessKeyId, SECRET_KEY: awsKeys.secretAccessKey } },
    );
    t.after(() => h.stop());
    const secrets = new Map<string, string>([['vaultToken', vaultToken], ['awsSecretKey', awsKeys.secretAccessKey]]);
    const s = (label: string): string => secrets.get(label) ?? assert.fail(label);
    const stores = ['kv', 'sm'] as const;
    for (const store of stores) {
      for (const label of ['env', 'file', 'mapUser', 'mapPassword', 'teamA', 'cold', 'failedWrite']) secrets.set(`${store}.${label}`, secretValue(`${store}${label.toLowerCase()}`));
      const creds = h.host.registry.credentials(store);
      await creds.putSecret({ name: 'app/env', value: s(`${store}.env`) });
      await creds.putSecret({ name: 'app/file', value: s(`${store}.file`) });
      await creds.putSecret({ name: 'app/map', value: { user: s(`${store}.mapUser`), password: s(`${store}.mapPassword`) } });
      await creds.putSecret({ name: 'team-a/db', value: s(`${store}.teamA`) });
      // Read for the first time under a fault below: the broker cache cannot answer for it.
      await creds.putSecret({ name: 'app/cold', value: s(`${store}.cold`) });
    }

    const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, rotation: h.host.rotation });
    t.after(() => app.close());
    const scan = startScan(app);
    const { api, fails, errors } = scan;

    const refs: SecretRef[] = stores.flatMap((store) => {
      const up = store.toUpperCase();
      return [
        { name: 'app/env', credentials: store, mount: 'env' as const, envName: `${up}_ENV` },
        { name: 'app/file', credentials: store, mount: 'file' as const, path: `${store}.txt` },
        { name: 'app/map', credentials: store, mount: 'env' as const, envName: `${up}_MAP` },
      ];
    });
    // Workers with secrets of both stores, through the service, the API and the bus.
    await h.host.workers.createWorker({ workerId: 'w-v1', spec: { command: ['sleep', '600'], secretRefs: refs }, correlationId: 'corr-v1' });
    const created = await api('POST', `/v1/workers?wait=running&waitTimeoutMs=${Math.min(budget(60_000), 600_000)}`, { workerId: 'w-v2', spec: { command: ['sleep', '600'], secretRefs: refs } });
    assert.equal(created.statusCode, 201, JSON.stringify(created.json()));
    scan.responses.push(JSON.stringify(await dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-remote-bus', params: { workerId: 'w-v3', spec: { command: ['sleep', '600'], secretRefs: refs } } })));
    // The delivery itself worked, compared by digest so that neither the command nor its output carries a value.
    const digest = async (workerId: string, script: string): Promise<string> => (await h.host.workers.executeCommand(workerId, ['sh', '-c', `${script} | sha256sum`], 60_000)).stdout.split(' ')[0] ?? '';
    for (const store of stores) {
      const up = store.toUpperCase();
      assert.equal(await digest('w-v2', `printf %s "$${up}_ENV"`), sha256(s(`${store}.env`)), `${store} env`);
      assert.equal(await digest('w-v2', `printf %s "$${up}_MAP_PASSWORD"`), sha256(s(`${store}.mapPassword`)), `${store} map`);
      assert.equal(await digest('w-v2', `cat "$WM_SECRETS_DIR/${store}.txt"`), sha256(s(`${store}.file`)), `${store} file`);
    }
    for (const url of ['/v1/workers', '/v1/workers/w-v2', '/v1/secrets/app%2Fenv/versions?credentials=kv', '/v1/secrets/app%2Fmap/versions?credentials=sm', '/v1/secrets/app%2Ffile/rotations?credentials=sm']) {
      const res = await api('GET', url);
      assert.ok(res.statusCode < 500, `${url}: ${JSON.stringify(res.json())}`);
    }

    // Failures around the values, in the host and in each backend.
    const create = (workerId: string, secretRefs: SecretRef[]): Promise<unknown> => h.host.workers.createWorker({ workerId, spec: { command: ['true'], secretRefs } });
    for (const store of stores) {
      await fails(`${store}: keys on a string`, create(`w-${store}-f1`, [{ name: 'app/env', credentials: store, mount: 'env', keys: ['x'] }]));
      await fails(`${store}: missing key`, create(`w-${store}-f2`, [{ name: 'app/map', credentials: store, mount: 'env', keys: ['nope'] }]));
      await fails(`${store}: unknown version`, create(`w-${store}-f3`, [{ name: 'app/env', credentials: store, mount: 'env', version: store === 'kv' ? '42' : randomUUID() }]));
      await fails(`${store}: other tenant`, create(`w-${store}-f4`, [{ name: 'team-a/db', credentials: store, mount: 'env' }]));
      await fails(`${store}: provider refuses after resolution`, h.host.workers.createWorker({ workerId: `w-${store}-f5`, spec: { command: ['true'], workingDir: '../..', secretRefs: refs } }));
      const res = await api('POST', '/v1/workers', { workerId: `w-${store}-f6`, spec: { command: ['true'], secretRefs: [{ name: 'app/env', credentials: store, mount: 'env', keys: ['x'] }] } });
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${store}: ${res.statusCode}`);
    }
    // Vault sealed, then refusing the path: the first read of app/cold fails both times.
    vault.sealed = true;
    await fails('kv: Vault sealed', create('w-kv-f7', [{ name: 'app/cold', credentials: 'kv', mount: 'env' }]));
    vault.sealed = false;
    vault.fault({ kind: 'status', status: 403, errors: ['permission denied'], match: /app\/cold/, times: 10 });
    await fails('kv: permission denied', create('w-kv-f8', [{ name: 'app/cold', credentials: 'kv', mount: 'env' }]));
    // A write Vault fails: the value was sent, and must not come back in the error.
    vault.fault({ kind: 'status', status: 500, errors: ['internal error'], match: /data\/wm\/app\/env/, method: 'POST', times: 10 });
    await fails('kv: a write Vault fails', h.host.registry.credentials('kv').putSecret({ name: 'app/env', value: s('kv.failedWrite') }));
    // AWS denying the read, then throttling it past the retries.
    aws.setDeny(awsKeys.accessKeyId, ['secretsmanager:GetSecretValue']);
    await fails('sm: access denied', create('w-sm-f7', [{ name: 'app/cold', credentials: 'sm', mount: 'env' }]));
    aws.setDeny(awsKeys.accessKeyId, undefined);
    aws.injectFault({ kind: 'throttle' }, { operation: 'GetSecretValue', count: 10 });
    await fails('sm: throttled', create('w-sm-f8', [{ name: 'app/cold', credentials: 'sm', mount: 'env' }]));
    aws.clearFaults();
    // AWS answering a write with a message that quotes the value it was sent.
    aws.injectFault({ kind: 'error', status: 400, type: 'InvalidParameterException', message: `Invalid SecretString: ${s('sm.failedWrite')}` }, { operation: 'PutSecretValue', count: 10 });
    await fails('sm: a write AWS refuses, quoting the value', h.host.registry.credentials('sm').putSecret({ name: 'app/env', value: s('sm.failedWrite') }));
    aws.clearFaults();
    assert.equal(errors.length, 16);
    const codes = errors.map((e) => (e as { code?: string }).code);
    assert.ok(codes.includes('WM_ERR_NETWORK') && codes.includes('WM_ERR_PERMISSION_DENIED') && codes.includes('WM_ERR_RESOURCE_EXHAUSTED') && codes.includes('WM_ERR_VALIDATION'), `the backends' failures reached the host: ${codes.join(', ')}`);

    // A manual rotation of each store through the API: the file-mounted workers get the generated value in place.
    for (const store of stores) {
      const rotated = await api('POST', '/v1/secrets/app%2Ffile/rotate', { credentials: store });
      assert.equal(rotated.statusCode, 200, JSON.stringify(rotated.json()));
      const current = await h.host.registry.credentials(store).getSecret({ name: 'app/file' });
      secrets.set(`${store}.rotated`, typeof current.value === 'string' ? current.value : assert.fail('a string secret'));
      const rotatedDigest = sha256(s(`${store}.rotated`));
      await waitFor(async () => (await digest('w-v3', `cat "$WM_SECRETS_DIR/${store}.txt"`)).startsWith(rotatedDigest), `w-v3 to read the rotated ${store} file`);
    }

    // State files, while the workers still run; only the provider's own secret files may hold values.
    await assertStateFilesClean(h, () => secrets, 6);
    await terminateAll(h, scan, ['w-v1', 'w-v2', 'w-v3']);
    assert.ok(h.logs.length > 20 && h.events.length > 5, `${h.logs.length} log lines, ${h.events.length} events`);
    assertNoLeak({ logs: h.logs, events: h.events, errors, responses: scan.responses }, secrets);
  });
});

// Keycloak (instance `kc`, credentials-keycloak through openid-client against the Keycloak double): the canaries are
// every client secret the realm generated (the admin client's, the served clients' current, rotated and regenerated
// ones) and every access token its token endpoint issued (the plugin's own admin tokens included), each token also by
// its signature alone. Tokens live six seconds, so the token a worker holds as a file is renewed in place during the
// test (LeaseRenewals), and its renewals fail while a service account is off. The failures are Keycloak's own: a
// service account switched off, a client the realm does not have, the token endpoint down or refusing the secret, the
// admin API failing or dropping the connection; and a rotation whose new secret Keycloak refuses rolls forward.
describe('redaction with Keycloak: no client secret or token in anything the host emits', () => {
  it('delivers tokens and client secrets, renews a token, fails around them, rotates and rolls forward, and finds no secret or token in logs, events, errors, responses or state files', { timeout: budget(300_000) }, async (t) => {
    const ADMIN = 'wm-rotator';
    const APP = 'ci-app';
    const kc = await startKeycloakDouble({
      clients: [{ clientId: ADMIN, realmManagementRoles: ['manage-clients'] }, { clientId: APP }, { clientId: 'ci-cold' }, { clientId: 'ci-disabled', serviceAccountsEnabled: false }],
      tokenTtlSeconds: 6,
      rotation: { expirationPeriod: 86_400, rotatedExpirationPeriod: 3_600, remainingRotationPeriod: 600 },
    });
    t.after(() => kc.close());
    // The admin client's secret file is the operator's, outside the host's state folder (which is scanned).
    const credsDir = await mkdtemp(path.join(os.tmpdir(), 'wm-redaction-kc-'));
    t.after(() => rm(credsDir, { recursive: true, force: true }));
    const adminFile = path.join(credsDir, 'admin-secret');
    await writeFile(adminFile, `${kc.client(ADMIN).secret}\n`, { mode: 0o600 });
    const PATH = process.env['PATH'] ?? '/usr/bin:/bin';
    const h = await startTestHost(
      `
host: { id: redact-keycloak, stateDir: \${DIR}/state }
secrets:
  cacheTtlMs: 5000
plugins:
${keycloakPluginYaml}  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH}" }
instances:
${keycloakInstanceYaml(kc, {
    name: 'kc',
    admin: { clientId: ADMIN, file: adminFile },
    clients: [{ clientId: APP, rotate: true }, { clientId: 'ci-cold' }, { clientId: 'ci-disabled' }, { clientId: 'ci-x*', rotate: true }],
    settings: { tokenSkewSeconds: 1, requestTimeoutMs: 5_000 },
  })}  - { name: local, plugin: process, default: true }
`,
      { env: { PATH } },
    );
    t.after(() => h.stop());
    const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, bus: h.host.bus, subjects: h.host.subjects, rotation: h.host.rotation });
    t.after(() => app.close());
    const scan = startScan(app);
    const { api, fails, errors } = scan;

    const refs: SecretRef[] = [
      { name: `token/${APP}`, credentials: 'kc', mount: 'file', path: 'app.jwt', onRotation: 'hot' },
      { name: `client-secret/${APP}`, credentials: 'kc', mount: 'file', path: 'app.secret' },
      { name: `client-secret/${APP}`, credentials: 'kc', mount: 'env', envName: 'APP_SECRET' },
    ];
    // Workers with a token and the client secret, through the service, the API and the bus.
    await h.host.workers.createWorker({ workerId: 'w-k1', spec: { command: ['sleep', '600'], secretRefs: refs }, correlationId: 'corr-k1' });
    const created = await api('POST', `/v1/workers?wait=running&waitTimeoutMs=${Math.min(budget(60_000), 600_000)}`, { workerId: 'w-k2', spec: { command: ['sleep', '600'], secretRefs: refs } });
    assert.equal(created.statusCode, 201, JSON.stringify(created.json()));
    scan.responses.push(JSON.stringify(await dispatchWorkerCommand(h.host.workers, { operation: 'create', idempotencyKey: 'red-kc-bus', params: { workerId: 'w-k3', spec: { command: ['sleep', '600'], secretRefs: refs } } })));
    // The delivery itself worked, compared by digest so that neither the command nor its output carries a value.
    const digest = async (workerId: string, script: string): Promise<string> => (await h.host.workers.executeCommand(workerId, ['sh', '-c', `${script} | sha256sum`], 60_000)).stdout.split(' ')[0] ?? '';
    const issuedToken = (d: string): boolean => kc.issued.tokens.some((tk) => sha256(tk) === d);
    assert.equal(await digest('w-k2', 'cat "$WM_SECRETS_DIR/app.secret"'), sha256(kc.client(APP).secret), 'client secret file');
    assert.equal(await digest('w-k2', 'printf %s "$APP_SECRET"'), sha256(kc.client(APP).secret), 'client secret env');
    const firstToken = await digest('w-k2', 'cat "$WM_SECRETS_DIR/app.jwt"');
    assert.ok(issuedToken(firstToken), 'the token file holds a token the realm issued');
    // The token's lease ends with it: the file is renewed in place, with a token issued later.
    await waitFor(async () => {
      const now = await digest('w-k2', 'cat "$WM_SECRETS_DIR/app.jwt"');
      return now !== firstToken && issuedToken(now);
    }, 'the token file to be renewed', 60_000, 250);
    assert.ok(h.logs.some((l) => l.includes('leased secret renewed in the workers that use it')));
    for (const url of ['/v1/workers', '/v1/workers/w-k2', `/v1/secrets/client-secret%2F${APP}/versions?credentials=kc`, `/v1/secrets/token%2F${APP}/versions?credentials=kc`]) {
      const res = await api('GET', url);
      assert.ok(res.statusCode < 500, `${url}: ${JSON.stringify(res.json())}`);
    }

    // Failures around the values, in the host and in Keycloak.
    const create = (workerId: string, secretRefs: SecretRef[]): Promise<unknown> => h.host.workers.createWorker({ workerId, spec: { command: ['true'], secretRefs } });
    await fails('service account off', create('w-kf1', [{ name: 'token/ci-disabled', credentials: 'kc', mount: 'env' }]));
    await fails('no such client', create('w-kf2', [{ name: 'client-secret/ci-xnope', credentials: 'kc', mount: 'env' }]));
    await fails('unknown version', create('w-kf3', [{ name: `client-secret/${APP}`, credentials: 'kc', mount: 'env', version: 's-0000000000000000' }]));
    await fails('keys on a string', create('w-kf4', [{ name: `client-secret/${APP}`, credentials: 'kc', mount: 'env', keys: ['x'] }]));
    kc.fault({ match: 'token', kind: 'status', status: 503 });
    await fails('token endpoint down', create('w-kf5', [{ name: 'token/ci-cold', credentials: 'kc', mount: 'env' }]));
    kc.clearFaults();
    kc.fault({ match: 'token', kind: 'invalid-client' });
    await fails('Keycloak refuses the secret', create('w-kf6', [{ name: 'token/ci-cold', credentials: 'kc', mount: 'env' }]));
    kc.clearFaults();
    kc.fault({ match: 'admin', kind: 'status', status: 500 });
    await fails('admin API failing', create('w-kf7', [{ name: 'client-secret/ci-xtwo', credentials: 'kc', mount: 'env' }]));
    kc.clearFaults();
    kc.fault({ match: 'admin', kind: 'reset' });
    await fails('admin API dropping the connection', create('w-kf8', [{ name: 'client-secret/ci-xthree', credentials: 'kc', mount: 'env' }]));
    kc.clearFaults();
    await fails('a token cannot be rolled back', h.host.rotation.rollback({ name: `token/${APP}`, credentials: 'kc', requester: 'alice' }));
    const res = await api('POST', '/v1/workers', { workerId: 'w-kf9', spec: { command: ['true'], secretRefs: [{ name: 'token/ci-disabled', credentials: 'kc', mount: 'env' }] } });
    assert.ok(res.statusCode >= 400 && res.statusCode < 600, `${res.statusCode}`);
    assert.equal(errors.length, 9);
    const codes = errors.map((e) => (e as { code?: string }).code);
    for (const code of ['WM_ERR_PERMISSION_DENIED', 'WM_ERR_SECRET_NOT_FOUND', 'WM_ERR_SECRET_VERSION_NOT_FOUND', 'WM_ERR_NETWORK', 'WM_ERR_AUTHENTICATION', 'WM_ERR_COMPATIBILITY']) {
      assert.ok(codes.includes(code), `Keycloak's failures reached the host: ${codes.join(', ')} (no ${code})`);
    }

    // A rotation through the API: file-mounted workers get the regenerated secret in place, env ones are restarted.
    const rotated = await api('POST', `/v1/secrets/client-secret%2F${APP}/rotate`, { credentials: 'kc' });
    assert.equal(rotated.statusCode, 200, JSON.stringify(rotated.json()));
    assert.equal((rotated.json() as { rotation: { state: string } }).rotation.state, 'in_progress');
    assert.equal(await digest('w-k3', 'cat "$WM_SECRETS_DIR/app.secret"'), sha256(kc.client(APP).secret));
    // A rotation Keycloak refuses (the service account off: every new secret fails its test) rolls forward, retrying,
    // and once the account is back, moves the workers to a secret that works. A token rotation fails as well.
    kc.client(APP).serviceAccountsEnabled = false;
    const refused = await api('POST', `/v1/secrets/client-secret%2F${APP}/rotate`, { credentials: 'kc' });
    const failed = (refused.json() as { rotation: { state: string; rollbackId?: string } }).rotation;
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    kc.client(APP).serviceAccountsEnabled = true;
    await waitFor(() => h.host.rotation.history(`client-secret/${APP}`).some((r) => r.id === failed.rollbackId && r.state === 'completed'), 'the roll-forward to complete', 60_000);
    assert.equal(await digest('w-k3', 'cat "$WM_SECRETS_DIR/app.secret"'), sha256(kc.client(APP).secret));
    assert.equal((await api('POST', `/v1/secrets/token%2F${APP}/rotate`, { credentials: 'kc' })).statusCode, 200);
    await api('GET', `/v1/secrets/client-secret%2F${APP}/rotations?credentials=kc`);
    await api('GET', `/v1/secrets/client-secret%2F${APP}/versions?credentials=kc`);

    const canaries = (): Map<string, string> => {
      const out = new Map<string, string>();
      kc.issued.secrets.forEach((secret, i) => out.set(`secret#${i}`, secret));
      kc.issued.tokens.forEach((token, i) => {
        out.set(`token#${i}`, token);
        out.set(`token#${i}.signature`, token.split('.')[2] ?? token);
      });
      return out;
    };
    // State files, while the workers still run; only the provider's own secret files may hold values.
    const scanned = await assertStateFilesClean(h, canaries, 6);
    assert.ok(scanned.some((f) => f.endsWith('keycloak-versions.json')), 'the plugin\'s own state file is among those scanned');
    await terminateAll(h, scan, ['w-k1', 'w-k2', 'w-k3']);
    assert.ok(h.logs.length > 20 && h.events.length > 5, `${h.logs.length} log lines, ${h.events.length} events`);
    assert.ok(kc.issued.tokens.length >= 4 && kc.issued.secrets.length >= 8, `${kc.issued.tokens.length} tokens and ${kc.issued.secrets.length} secrets among the canaries`);
    assertNoLeak({ logs: h.logs, events: h.events, errors, responses: scan.responses }, canaries());
  });
});
