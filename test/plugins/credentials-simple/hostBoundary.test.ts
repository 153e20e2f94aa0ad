import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { budget } from '../../helpers/waitFor.ts';

const KEY = 'host-test-key-material-0123456789';
const PLAINTEXT = 'cross-thread-plaintext-5f2e9a';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

// Each test boots its own host in its own folder: they run side by side.
describe('credentials-simple inside the real host', { concurrency: true }, () => {
  it('boots from YAML with its key granted through env:, and serves secrets across the thread boundary', { timeout: budget(120_000) }, async (t) => {
    const host = await startTestHost(
      `
host: { id: creds, stateDir: \${DIR}/state }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    env: { WM_CREDS_KEY: "\${WM_CREDS_KEY}" }
    limits: { threads: 2 }
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyEnv: WM_CREDS_KEY, scrypt: { cost: 1024 } }
`,
      { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', WM_CREDS_KEY: KEY } },
    );
    t.after(() => host.stop());
    assert.equal(host.report.find((r) => r.instance === 'vault')?.state, 'running', JSON.stringify(host.report));
    const creds = host.host.registry.proxy<CredentialProviderContract>('vault', 'credentials');

    // Concurrent writes land on both threads of the pool; none is lost.
    const puts = await Promise.all(Array.from({ length: 10 }, (_, i) => creds.putSecret({ name: 'db', value: `${PLAINTEXT}-${i}` })));
    assert.equal(new Set(puts.map((p) => p.version)).size, 10);
    const current = await creds.getSecret({ name: 'db' });
    assert.equal(current.version, '10');
    assert.equal(typeof current.value, 'string');
    assert.deepEqual(await creds.describe({ name: 'db' }), { name: 'db', currentVersion: '10', versions: 10 });

    const pending = await creds.createPendingVersion({ name: 'db', value: { user: 'app', password: PLAINTEXT } });
    assert.deepEqual(await creds.testVersion({ name: 'db', version: pending.version }), { ok: true });
    await creds.promoteVersion({ name: 'db', version: pending.version });
    assert.deepEqual((await creds.getSecret({ name: 'db', version: 'current' })).value, { user: 'app', password: PLAINTEXT });

    // Coded errors survive the thread boundary.
    await assert.rejects(creds.getSecret({ name: 'missing' }), (e: { code?: string }) => e.code === 'WM_ERR_SECRET_NOT_FOUND');
    await assert.rejects(creds.getSecret({ name: 'db', version: '99' }), (e: { code?: string }) => e.code === 'WM_ERR_SECRET_VERSION_NOT_FOUND');
    await assert.rejects(creds.putSecret({ name: 'db', value: 'x'.repeat(70_000) }), (e: { code?: string }) => e.code === 'WM_ERR_SECRET_SIZE_LIMIT');

    // The value is only ciphertext on disk and never in the host's logs or events.
    for (const file of await filesUnder(host.dir)) {
      assert.ok(!(await readFile(file)).includes(PLAINTEXT), `${file} holds the plaintext`);
      assert.ok(!(await readFile(file)).includes(KEY), `${file} holds the key`);
    }
    assert.ok(host.logs.length > 0);
    for (const line of host.logs) assert.ok(!line.includes(PLAINTEXT) && !line.includes(KEY), line);
    for (const event of host.events) assert.ok(!JSON.stringify(event).includes(PLAINTEXT), JSON.stringify(event));
  });

  it('fails to start with reason no-key when the key variable is not granted to its threads', { timeout: budget(120_000) }, async (t) => {
    const host = await startTestHost(`
host: { id: creds-nokey, stateDir: \${DIR}/state }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyEnv: WM_CREDS_KEY, scrypt: { cost: 1024 } }
`);
    t.after(() => host.stop());
    const row = host.report.find((r) => r.instance === 'vault');
    assert.equal(row?.state, 'failed');
    assert.match(row?.error?.message ?? '', /WM_CREDS_KEY/);
  });

  it('runs in the restricted tier, out of process, keeping its store in its own state folder', { timeout: budget(120_000) }, async (t) => {
    const host = await startTestHost(`
host: { id: creds-restricted, stateDir: \${DIR}/state }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    isolation: restricted
    env: { WM_CREDS_KEY: "${KEY}" }
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyEnv: WM_CREDS_KEY, scrypt: { cost: 1024 } }
`);
    t.after(() => host.stop());
    assert.equal(host.report.find((r) => r.instance === 'vault')?.state, 'running', JSON.stringify(host.report));
    const creds = host.host.registry.proxy<CredentialProviderContract>('vault', 'credentials');
    await creds.putSecret({ name: 'db', value: PLAINTEXT });
    assert.equal((await creds.getSecret({ name: 'db' })).value, PLAINTEXT);
    // The store is in the instance's folder on the host's disk, encrypted.
    const files = await filesUnder(path.join(host.dir, 'state', 'instances', 'vault'));
    assert.ok(files.length > 0);
    for (const file of files) assert.ok(!(await readFile(file, 'utf8')).includes(PLAINTEXT), `${file} holds the plaintext`);
  });
});
