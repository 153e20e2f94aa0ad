import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { RotationRecord, SecretVersionEntry } from '../../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../../host/src/api/createApiServer.ts';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../../../doubles/awsSecretsManager.ts';
import { VaultDouble } from '../../../doubles/vault.ts';
import { repoRoot } from '../../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../../helpers/waitFor.ts';
import { pluginPolicy } from '../../../plugins/credentials-vault/helpers.ts';
import { rotationDir, startRotationHost, type RotationHost } from './rotationHost.ts';

// The rotation state table (pending -> in_progress -> completed / failed -> rollback -> pending) and the rule that a
// version a failed rotation created never becomes current again, on the two remote backends: the real Vault and AWS
// Secrets Manager plugins, through their real client libraries, against the protocol doubles. rotationRollback.test.ts
// walks the same table on the embedded store with a fault-injecting wrapper; here every fault is one the backend itself
// can produce (a version deleted under the rotation, KMS refusing to decrypt, a policy change that stops reads, a 503), and the final
// assertions read the backend's own state, not the plugin's view of it.

const VALUE = 'backend-rollback-plaintext-9c41e7';
const GRACE_MS = budget(5_000);
const AWS_KEYS = { accessKeyId: 'AKIAWMROLLBACKKEY001', secretAccessKey: 'wm-rollback-test-secret-key/00000000000' };

/** What one backend gives the state-table walk: its YAML, its faults, and what it holds. */
interface Backend {
  /** `${DIR}` is the test's folder. */
  yaml: string;
  /** Files the YAML names, written into the test's folder before the host starts. */
  files?: Record<string, string>;
  /** The next rotation's test step finds its new version unusable, as the backend would report it. */
  failNextTest(previous: string): void;
  /** From the moment the new version is promoted, the backend answers no read until `heal`. */
  failReadsAfterPromotion(previous: string): void;
  heal(): void;
  /** The version the backend itself marks current. */
  current(): string | undefined;
  /** Whether the backend itself holds the version revoked (Vault: destroyed; AWS: the plugin's revocation tag). */
  revoked(version: string): boolean;
}

const processPlugin = `  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
`;
const processInstance = '  - { name: proc, plugin: process, default: true }\n';

function settings(grace: number): string {
  return `
secrets:
  rotation:
    defaultGracePeriodMs: ${grace}
`;
}

async function vaultBackend(t: TestContext, withProcess: boolean): Promise<Backend> {
  const vault = await VaultDouble.start();
  t.after(() => vault.close());
  vault.setPolicy('wm', pluginPolicy('wm'));
  const token = vault.createToken({ policies: ['wm'] });
  const key = (): ReturnType<VaultDouble['inspect']> => vault.inspect('secret', 'wm/db');
  // Each fault fires once, from the first read of the key's data (GET secret/data/wm/db) once `cond` holds: the read
  // the rotation step under test makes, so nothing earlier is disturbed.
  const beforeDataRead = (cond: () => boolean, act: () => Promise<void> | void): void => {
    let fired = false;
    vault.fault({
      kind: 'before', match: /^secret\/data\/wm\/db$/, method: 'GET', times: 100_000,
      run: async () => {
        if (fired || !cond()) return;
        fired = true;
        await act();
      },
    });
  };
  return {
    yaml: `
plugins:
  - name: credentials-vault
    package: ${repoRoot}plugins/credentials-vault
${withProcess ? processPlugin : ''}instances:
  - name: vault
    plugin: credentials-vault
    config: { address: "${vault.address}", pathPrefix: wm, auth: { method: token, token: { file: \${DIR}/vault-token } }, readRetries: 1 }
${withProcess ? processInstance : ''}`,
    failNextTest(previous) {
      // An operator soft-deletes the pending version before the rotation's test reads it.
      beforeDataRead(() => (key()?.currentVersion ?? 0) > Number(previous), async () => {
        const pending = key()?.currentVersion ?? 0;
        const res = await fetch(`${vault.address}/v1/secret/delete/wm/db`, { method: 'POST', headers: { 'X-Vault-Token': vault.rootToken }, body: JSON.stringify({ versions: [pending] }) });
        assert.equal(res.status, 204, await res.text());
      });
    },
    failReadsAfterPromotion(previous) {
      // Once the new version is promoted, a policy change takes the plugin's read of values away (403) while it can
      // still move stages in the metadata: the distribution fails, and so does the rollback's redistribution.
      beforeDataRead(() => { const c = key()?.customMetadata?.['wm-current']; return c !== undefined && c !== previous; }, () => {
        vault.setPolicy('wm', pluginPolicy('wm').map((rule) => (rule.path.startsWith('secret/data/') ? { ...rule, capabilities: ['create', 'update'] } : rule)));
      });
    },
    heal() {
      vault.setPolicy('wm', pluginPolicy('wm'));
    },
    current: () => key()?.customMetadata?.['wm-current'],
    revoked: (version) => key()?.versions[version]?.destroyed === true,
    // The token from a file, as the plugin's docs ask: never in the YAML.
    files: { 'vault-token': `${token}\n` },
  };
}

async function awsBackend(t: TestContext, withProcess: boolean): Promise<Backend> {
  const d: SecretsManagerDouble = await startSecretsManagerDouble({ principals: [AWS_KEYS] });
  t.after(() => d.close());
  const secret = (): ReturnType<SecretsManagerDouble['secret']> => d.secret('wm/db');
  const holder = (label: string): string | undefined => secret()?.versions.find((v) => v.stages.includes(label))?.versionId;
  return {
    yaml: `
plugins:
  - name: aws-secrets
    package: ${repoRoot}plugins/credentials-aws-secrets-manager
    env: { AWS_ACCESS_KEY_ID: "${AWS_KEYS.accessKeyId}", AWS_SECRET_ACCESS_KEY: "${AWS_KEYS.secretAccessKey}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 1, callTimeoutMs: 60000 }
${withProcess ? processPlugin : ''}instances:
  - name: vault
    plugin: aws-secrets
    config: { region: ${d.region}, endpoint: "${d.url}", namePrefix: wm/, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 } }
${withProcess ? processInstance : ''}`,
    failNextTest(previous) {
      // KMS cannot decrypt the new version: the rotation's test read fails as AWS answers it.
      d.injectFault({ kind: 'error', status: 400, type: 'DecryptionFailure', message: 'KMS cannot decrypt the secret value.' }, {
        operation: 'GetSecretValue', count: 1, when: () => holder('AWSPENDING') !== undefined && holder('AWSPENDING') !== previous,
      });
    },
    failReadsAfterPromotion(previous) {
      let promoted = false;
      d.injectFault({ kind: 'error', status: 503, type: 'ServiceUnavailable' }, {
        operation: 'GetSecretValue', when: () => (promoted ||= (holder('AWSCURRENT') ?? previous) !== previous),
      });
    },
    heal() {
      d.clearFaults();
    },
    current: () => holder('AWSCURRENT'),
    revoked: (version) => {
      const tags = secret()?.tags ?? {};
      return Object.entries(tags).some(([k, v]) => k === `wm:revoked:${version}` || (k.startsWith('wm:revoked-set:') && v.split(' ').includes(version)));
    },
  };
}

const BACKENDS: Record<string, (t: TestContext, withProcess: boolean) => Promise<Backend>> = { vault: vaultBackend, 'aws-secrets-manager': awsBackend };

async function start(t: TestContext, backend: Backend, grace: number): Promise<{ h: RotationHost; app: FastifyInstance }> {
  const dir = await rotationDir(t);
  for (const [file, content] of Object.entries(backend.files ?? {})) await writeFile(path.join(dir, file), content, { mode: 0o600 });
  const h = await startRotationHost(dir, settings(grace) + backend.yaml);
  t.after(() => h.stop());
  const app = createApiServer({ workers: h.host.workers, registry: h.host.registry, logger: h.host.logger, rotation: h.host.rotation });
  t.after(() => app.close());
  return { h, app };
}

async function records(app: FastifyInstance): Promise<RotationRecord[]> {
  const res = await app.inject({ method: 'GET', url: '/v1/secrets/db/rotations' });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ rotations: RotationRecord[] }>().rotations;
}

async function versions(app: FastifyInstance): Promise<SecretVersionEntry[]> {
  const res = await app.inject({ method: 'GET', url: '/v1/secrets/db/versions' });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ versions: SecretVersionEntry[] }>().versions;
}

const currentOf = (vs: SecretVersionEntry[]): string | undefined => vs.find((v) => v.stages.includes('current'))?.version;

async function post(app: FastifyInstance, op: 'rotate' | 'rollback'): Promise<{ status: number; rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/v1/secrets/db/${op}` });
  return { status: res.statusCode, ...res.json<{ rotation?: RotationRecord; code?: string; details?: Record<string, unknown> }>() };
}

const trail = (h: RotationHost, id: string): string[] => h.audit.entries.filter((e) => e.details?.['rotationId'] === id).map((e) => `${String(e.details?.['state'])}/${String(e.details?.['step'])}`);

const completed = (h: RotationHost, id: string, what: string): Promise<RotationRecord> =>
  waitFor(() => (trail(h, id).at(-1)?.startsWith('completed/') === true ? h.host.rotation.history().find((r) => r.id === id && r.state === 'completed') : undefined), what, GRACE_MS + budget(30_000));

for (const [name, make] of Object.entries(BACKENDS)) {
  describe(`Rotation rollback semantics on ${name}`, () => {
    it('walks the state table, and the version whose test failed never becomes current, at the backend either', { timeout: budget(240_000) }, async (t) => {
      const backend = await make(t, false);
      const { h, app } = await start(t, backend, GRACE_MS);
      await h.creds().putSecret({ name: 'db', value: VALUE });
      const v1 = currentOf(await versions(app)) as string;
      assert.equal(backend.current(), v1);

      // pending -> in_progress -> completed
      const r1 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
      assert.deepEqual([r1.state, r1.previousVersion], ['in_progress', v1]);
      const v2 = r1.newVersion as string;
      await completed(h, r1.id, 'the first rotation to complete after grace');
      assert.equal(backend.current(), v2);
      assert.equal(backend.revoked(v1), true, 'the old version is revoked at the backend');

      // in_progress -> failed at test, and its automatic rollback back to the version current before it.
      backend.failNextTest(v2);
      const r2 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
      assert.deepEqual([r2.state, r2.step, r2.previousVersion], ['failed', 'test', v2], JSON.stringify(r2));
      const v3 = r2.newVersion as string;
      assert.ok(v3 !== undefined && v3 !== v2);
      const rb2 = await waitFor(async () => (await records(app)).find((r) => r.id === r2.rollbackId && r.state === 'completed'), 'the automatic rollback to complete');
      assert.deepEqual([rb2.operation, rb2.rollbackOf, rb2.previousVersion, rb2.newVersion], ['rollback', r2.id, v3, v2]);
      const afterFailure = await versions(app);
      assert.equal(currentOf(afterFailure), v2);
      assert.equal(backend.current(), v2);
      assert.equal(backend.revoked(v3), true, 'the failed version is revoked at the backend');
      assert.equal(afterFailure.find((v) => v.version === v3)?.failure?.rotationId, r2.id);

      // failed -> pending: rotating again makes a new version, never the failed one.
      const r3 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
      assert.deepEqual([r3.state, r3.step, r3.previousVersion], ['in_progress', 'grace', v2]);
      const v4 = r3.newVersion as string;
      assert.ok(![v2, v3].includes(v4));

      // in_progress -> rollback: a manual rollback in the grace period restores the version current before it.
      const rb3 = await h.host.rotation.rollback({ name: 'db', requester: 'bob' });
      assert.deepEqual([rb3.state, rb3.previousVersion, rb3.newVersion], ['rollback', v4, v2]);
      assert.equal(currentOf(await versions(app)), v2);
      assert.equal(backend.current(), v2);
      await completed(h, rb3.id, 'the manual rollback to complete after grace');
      assert.equal(backend.revoked(v4), true);

      // rollback -> pending: the secret rotates again and completes.
      const r4 = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
      assert.equal(r4.previousVersion, v2);
      await completed(h, r4.id, 'the last rotation to complete after grace');
      const v5 = r4.newVersion as string;
      assert.equal(backend.current(), v5);
      assert.equal(currentOf(await versions(app)), v5);

      // The failed version is refused if anyone asks to make it current, and no record ever did.
      assert.deepEqual(h.host.rotation.history('db').filter((r) => r.newVersion === v3).map((r) => [r.operation, r.state]), [['rotate', 'failed']]);
      assert.equal(JSON.stringify([h.events, h.audit.entries, h.logs, await records(app)]).includes(VALUE), false);
    });

    it('a rollback that cannot reach the backend retries with backoff in view of the API, and a manual rollback never promotes the failed version', { timeout: budget(240_000) }, async (t) => {
      const backend = await make(t, true);
      const { h, app } = await start(t, backend, 60_000);
      await h.creds().putSecret({ name: 'db', value: VALUE });
      const v1 = currentOf(await versions(app)) as string;
      await h.host.workers.createWorker({ workerId: 'file-w', spec: { command: ['sleep', '600'], secretRefs: [{ name: 'db', mount: 'file', path: 'db' } as never] } });

      backend.failReadsAfterPromotion(v1);
      const rotated = await post(app, 'rotate');
      assert.equal(rotated.status, 200, JSON.stringify(rotated));
      const failed = rotated.rotation as RotationRecord;
      assert.deepEqual([failed.state, failed.step], ['failed', 'distribute'], JSON.stringify(failed));
      const v2 = failed.newVersion as string;

      // Never sitting silently: it tries again by itself, and the API shows when it will try next.
      const retrying = await waitFor(async () => {
        const rb = (await records(app)).find((r) => r.id === failed.rollbackId);
        return (rb?.retry?.attempts ?? 0) >= 2 && rb;
      }, 'the rollback to retry by itself');
      assert.equal(retrying.state, 'rollback');
      assert.ok(Date.parse(retrying.retry?.nextAttemptAt ?? '') > Date.parse(retrying.retry?.lastAttemptAt ?? ''), JSON.stringify(retrying.retry));

      // A manual rollback runs the unfinished rollback's next attempt: it never promotes the failed version.
      const manual = await post(app, 'rollback');
      assert.equal(manual.status, 200, JSON.stringify(manual));
      assert.equal(manual.rotation?.id, retrying.id);
      assert.notEqual(backend.current(), v2);
      assert.equal(h.host.rotation.history('db').filter((r) => r.operation === 'rollback').length, 1, 'no second rollback record');

      // The backend recovers: the rollback completes, the failed version is revoked there, the worker holds the old value.
      backend.heal();
      await post(app, 'rollback');
      const finished = await waitFor(async () => (await records(app)).find((r) => r.id === retrying.id && r.state === 'completed'), 'the rollback to complete', budget(120_000));
      assert.equal(finished.retry?.nextAttemptAt, undefined);
      assert.equal(backend.current(), v1);
      assert.equal(backend.revoked(v2), true);
      const held = await h.host.workers.executeCommand('file-w', ['sh', '-c', 'sha256sum < "$WM_SECRETS_DIR/db" | cut -c1-16']);
      assert.equal(held.stdout.trim(), createHash('sha256').update(VALUE).digest('hex').slice(0, 16));

      // Asked again, the failed version is refused with a code and the current one stays.
      const again = await post(app, 'rollback');
      assert.notEqual(again.status, 200);
      assert.equal(backend.current(), v1);
      assert.equal(JSON.stringify([h.events, h.audit.entries, h.logs]).includes(VALUE), false);
    });
  });
}
