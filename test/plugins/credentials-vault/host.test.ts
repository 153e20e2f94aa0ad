import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { describe, it } from 'node:test';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import type { LeaseView } from '../../doubles/vaultLeases.ts';
import type { VaultDouble } from '../../doubles/vault.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { leasePolicy, startVault, transitPolicy } from './helpers.ts';

// The host side of the Vault plugin's optional parts, through a real host (registry, thread sandbox, broker, process
// workers): the broker releases a dynamic secret's lease once the last worker holding it is terminated, and the
// host's typed proxy routes the transit operations.

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';

async function hostWithVault(t: TestContext, vault: VaultDouble, token: string): Promise<TestHost> {
  const h = await startTestHost(
    `
host: { id: h-vault, stateDir: \${DIR}/state, logLevel: debug }
secrets:
  # Long enough that both workers are handed the value (and so the lease) the first one was.
  cacheTtlMs: 600000
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    isolation: trusted
    env: { PATH: "${PATH}" }
  - name: credentials-vault
    package: ${repoRoot}plugins/credentials-vault
    isolation: trusted
instances:
  - { name: proc, plugin: process, default: true }
  - name: vault
    plugin: credentials-vault
    config:
      address: ${vault.address}
      pathPrefix: wm
      auth: { method: token, token: { file: \${DIR}/vault-token } }
      dynamic: [{ prefix: db, mount: database }]
`,
    { env: { PATH }, beforeStart: (dir) => writeFile(path.join(dir, 'vault-token'), `${token}\n`, { mode: 0o600 }) },
  );
  t.after(() => h.stop());
  return h;
}

/** Every file under a folder, as text. */
async function folderText(dir: string): Promise<string> {
  const files = await readdir(dir, { recursive: true, withFileTypes: true });
  const texts = await Promise.all(files.filter((f) => f.isFile()).map((f) => readFile(path.join(f.parentPath, f.name), 'utf8').catch(() => '')));
  return texts.join('\n');
}

const dbRef = { name: 'db/app', credentials: 'vault', mount: 'file' as const, path: 'db.json', onRotation: 'none' as const };

describe('credentials-vault through a real host', () => {
  it('two workers share a dynamic secret\'s lease: terminating one keeps it, terminating the last revokes it at Vault', { timeout: budget(180_000) }, async (t) => {
    const vault = await startVault(t);
    vault.mountDatabase('database', { app: { defaultTtlSeconds: 600, maxTtlSeconds: 0 } });
    vault.setPolicy('db', leasePolicy('database'));
    const h = await hostWithVault(t, vault, vault.createToken({ policies: ['wm', 'db'] }));
    const { host } = h;
    for (const workerId of ['lease-a', 'lease-b']) {
      await host.workers.createWorker({ workerId, spec: { command: ['sleep', '600'], secretRefs: [dbRef] } });
      t.after(() => host.workers.terminateWorker(workerId, { gracePeriodMs: 0 }).catch(() => undefined));
    }
    const live = vault.leases.live();
    assert.equal(live.length, 1, 'the second worker was handed the first one\'s credential, under the same lease');
    const lease = live[0] as LeaseView;
    const held = host.secrets.leases();
    assert.equal(held.length, 1);
    assert.deepEqual([held[0]?.credentials, held[0]?.name, [...(held[0]?.workers ?? [])].sort()], ['vault', 'db/app', ['lease-a', 'lease-b']]);
    assert.match(held[0]?.version ?? '', /^lease-[0-9a-f]{16}$/);
    const read = await host.workers.executeCommand('lease-a', ['sh', '-c', 'cat "$WM_SECRETS_DIR/db.json"'], budget(30_000));
    assert.deepEqual(JSON.parse(read.stdout), { username: lease.username, password: lease.password }, 'the worker got the credential');

    await host.workers.terminateWorker('lease-a', { gracePeriodMs: 0 });
    // Barrier: every release the terminate started has finished; none touched the lease another worker holds.
    await host.secrets.leaseReleasesSettled();
    assert.equal(vault.leases.leases().find((l) => l.leaseId === lease.leaseId)?.state, 'live', 'still live while lease-b holds it');
    assert.ok(!vault.requests.some((r) => r.path === 'sys/leases/revoke'), 'no revoke yet');
    assert.deepEqual(host.secrets.leases().map((l) => l.workers), [['lease-b']]);

    await host.workers.terminateWorker('lease-b', { gracePeriodMs: 0 });
    await waitFor(() => vault.leases.leases().find((l) => l.leaseId === lease.leaseId)?.state === 'revoked', 'the lease revoked at Vault');
    assert.ok(vault.requests.some((r) => r.method === 'PUT' && r.path === 'sys/leases/revoke' && r.status === 204));
    await host.secrets.leaseReleasesSettled();
    assert.deepEqual(host.secrets.leases(), []);
    assert.ok(h.logs.some((l) => l.includes('secret lease released')), 'the release is logged');

    // Neither the credential nor Vault's lease id in the host's logs, events or state (the plugin's state keeps the id).
    const seen = [h.logs.join('\n'), JSON.stringify(h.events), await folderText(path.join(h.dir, 'state', 'secrets'))].join('\n');
    for (const secret of [lease.username, lease.password, lease.leaseId]) assert.ok(!seen.includes(secret), 'a credential or lease id in the host log, events or state');
    const everything = await folderText(h.dir);
    assert.ok(!everything.includes(lease.password) && !everything.includes(lease.username), 'the credential is nowhere on disk once its workers are gone');
  });

  it('a worker whose create fails releases the lease it was handed; KV secrets (no lease) never touch the lease table', { timeout: budget(180_000) }, async (t) => {
    const vault = await startVault(t);
    vault.mountDatabase('database', { app: { defaultTtlSeconds: 600, maxTtlSeconds: 0 } });
    vault.setPolicy('db', leasePolicy('database'));
    const h = await hostWithVault(t, vault, vault.createToken({ policies: ['wm', 'db'] }));
    const { host } = h;
    // Two refs mounting to the same file: resolved (so the lease is issued), then refused before any worker exists.
    await host.registry.proxy<CredentialProviderContract>('vault', 'credentials').putSecret({ name: 'kv/x', value: 'kv-value' });
    await assert.rejects(host.workers.createWorker({ workerId: 'clash', spec: { command: ['sleep', '600'], secretRefs: [dbRef, { ...dbRef, name: 'kv/x' }] } }), (e: { code?: string }) => e.code === 'WM_ERR_VALIDATION');
    await host.secrets.leaseReleasesSettled();
    await waitFor(() => vault.leases.leases().length > 0 && vault.leases.live().length === 0, 'the fetched lease released');

    await host.workers.createWorker({ workerId: 'kv-only', spec: { command: ['sleep', '600'], secretRefs: [{ name: 'kv/x', credentials: 'vault', mount: 'env', envName: 'X' }] } });
    await host.workers.terminateWorker('kv-only', { gracePeriodMs: 0 });
    await host.secrets.leaseReleasesSettled();
    assert.deepEqual(host.secrets.leases(), []);
    const table = JSON.parse(await readFile(path.join(h.dir, 'state', 'secrets', 'leases.json'), 'utf8')) as { leases: unknown[] };
    assert.deepEqual(table.leases, []);
  });

  it('the host routes the transit operations to the plugin; the plaintext shows in no host log line', { timeout: budget(120_000) }, async (t) => {
    const vault = await startVault(t);
    vault.mountTransit('transit').createKey('wm-secrets');
    vault.setPolicy('transit', transitPolicy(['wm-secrets']));
    const h = await hostWithVault(t, vault, vault.createToken({ policies: ['wm', 'transit'] }));
    const creds = h.host.registry.proxy<CredentialProviderContract>('vault', 'credentials');
    const plaintext = Buffer.from('canary-host-transit-55e0b1').toString('base64');
    const sealed = await creds.encrypt({ key: 'wm-secrets', plaintext });
    assert.match(sealed.ciphertext, /^vault:v1:/);
    assert.deepEqual(await creds.rotateKey({ key: 'wm-secrets' }), { latestVersion: 2 });
    const rewrapped = await creds.rewrap({ key: 'wm-secrets', ciphertext: sealed.ciphertext });
    assert.equal(rewrapped.keyVersion, 2);
    assert.deepEqual(await creds.decrypt({ key: 'wm-secrets', ciphertext: rewrapped.ciphertext }), { plaintext });
    await assert.rejects(creds.decrypt({ key: 'wm-secrets', ciphertext: 'vault:v1:garbage' }), (e: { code?: string }) => e.code === 'WM_ERR_VALIDATION');
    const logs = h.logs.join('\n');
    assert.ok(!logs.includes(plaintext) && !logs.includes('canary-host-transit-55e0b1'));
  });
});
