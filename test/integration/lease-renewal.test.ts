import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startKeycloakDouble } from '../doubles/keycloakAdmin.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../helpers/keycloakHostYaml.ts';
import { repoRoot, startTestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';

// A leased secret (a Keycloak service-account token: its lease ends with the token) delivered as a file is renewed in
// the worker before it expires, in place, without a restart (the host's LeaseRenewals, at two thirds of the lease).

const TOKEN_TTL_S = 6;

describe('leased secrets are renewed in the workers that use them', () => {
  it('a file-mounted service-account token is replaced by a fresh one before it expires, in the same running worker', { timeout: budget(180_000) }, async (t) => {
    const kc = await startKeycloakDouble({ clients: [{ clientId: 'wm-rotator', realmManagementRoles: ['manage-clients'] }, { clientId: 'ci-runner' }], tokenTtlSeconds: TOKEN_TTL_S });
    t.after(() => kc.close());
    const h = await startTestHost(
      `
host: { id: h-leases, stateDir: \${DIR}/state, logLevel: info }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    isolation: trusted
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
${keycloakPluginYaml}instances:
  - { name: proc, plugin: process, default: true }
${keycloakInstanceYaml(kc, { name: 'keycloak', admin: { clientId: 'wm-rotator', file: '${DIR}/admin-secret' }, clients: [{ clientId: 'ci-runner' }], settings: { tokenSkewSeconds: 1 } })}`,
      { beforeStart: (dir) => writeFile(path.join(dir, 'admin-secret'), `${kc.client('wm-rotator').secret}\n`, { mode: 0o600 }) },
    );
    t.after(() => h.stop());
    const { host } = h;
    await host.workers.createWorker({
      workerId: 'reader',
      spec: { command: ['sleep', '600'], secretRefs: [{ name: 'token/ci-runner', credentials: 'keycloak', mount: 'file', path: 'token', onRotation: 'hot' }] },
    });
    t.after(() => host.workers.terminateWorker('reader', { gracePeriodMs: 0 }).catch(() => undefined));
    const read = async (): Promise<string> => (await host.workers.executeCommand('reader', ['sh', '-c', 'cat "$WM_SECRETS_DIR/token"'], budget(30_000))).stdout;
    /** The worker's process (the process provider's ref is its pid) and its restarts: a restart would change them. */
    const pid = async (): Promise<string> => {
      const { worker, record } = await host.workers.getRecord('reader');
      return `${worker.providerRef ?? '?'}/${record?.restartCount ?? '?'}`;
    };
    const first = await read();
    assert.match(first, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the worker holds a JWT');
    const before = await pid();
    // Renewal is due at 2/3 of the lease (about 3 s here); the deadline bounds a renewal that never comes.
    const second = await waitFor(async () => {
      const now = await read();
      return now !== first && now !== '' ? now : undefined;
    }, 'a fresh token in the worker file', budget(60_000), 250);
    assert.match(second, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(await pid(), before, 'the same worker process: renewed in place, not restarted');
    assert.ok(h.logs.some((l) => l.includes('leased secret renewed in the workers that use it')), 'the renewal is logged');
    assert.ok(!h.logs.some((l) => l.includes(first) || l.includes(second)), 'no token in the host log');
    // And again: each renewal arms the next.
    await waitFor(async () => {
      const now = await read();
      return now !== second && now !== first && now !== '' ? true : undefined;
    }, 'a third token in the worker file', budget(60_000), 250);
  });
});
