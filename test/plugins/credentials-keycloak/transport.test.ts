import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { writeFile, mkdir } from 'node:fs/promises';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import type { KeycloakDouble } from '../../doubles/keycloakAdmin.ts';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { budget } from '../../helpers/waitFor.ts';
import { assertNoCanary, claims, expectCode, realmSecrets, ROTATOR, RUNNER, startPlugin, startRealm } from './helpers.ts';

const listening = (server: net.Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
const closing = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * Keycloak behind TLS with a private CA, reached directly (caFile) and through an egress proxy (HTTPS_PROXY, as the
 * restricted tier sets it): the plugin's requests leave through `node:https` with the SDK's egressAgent there.
 */
describe('credentials-keycloak over https: private CA and the egress proxy', { timeout: budget(120_000) }, () => {
  let dir: string;
  let kc: KeycloakDouble;
  let front: https.Server;
  let frontPort: number;
  let proxy: http.Server;
  let proxyPort: number;
  let allowed: string[] = [];
  const caDir = (): string => dir;
  const tunnels: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-keycloak-tls-'));
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'ca.pem'),
    ]);
    kc = await startRealm();
    const upstream = new URL(kc.baseUrl);
    // TLS terminates here; the double behind it speaks http.
    front = https.createServer({ key: await readFile(path.join(dir, 'key.pem')), cert: await readFile(path.join(dir, 'ca.pem')) }, (req, res) => {
      const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    frontPort = await listening(front);
    // An egress proxy like the host's: CONNECT to listed host:port pairs, 403 for the rest.
    proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      const target = req.url ?? '';
      socket.on('error', () => {});
      if (!allowed.includes(target)) {
        socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      tunnels.push(target);
      const [host, port] = target.split(':');
      const up = net.connect(Number(port), host ?? '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      });
      up.on('error', () => socket.destroy());
    });
    proxyPort = await listening(proxy);
  });

  after(async () => {
    proxy.closeAllConnections();
    front.closeAllConnections();
    await closing(proxy);
    await closing(front);
    await kc.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('with caFile, tokens and client secrets come over TLS checked against that CA; without it the certificate is refused', async (t) => {
    const s = await startPlugin(kc, { baseUrl: `https://127.0.0.1:${frontPort}`, allowHttp: false, caFile: path.join(dir, 'ca.pem') });
    t.after(() => s.close());
    const token = await s.harness.proxy.getSecret({ name: `token/${RUNNER}` });
    assert.equal(claims(token.value as string)['azp'], RUNNER);
    assert.equal((await s.harness.proxy.getSecret({ name: `client-secret/${RUNNER}` })).value, kc.client(RUNNER).secret);

    const untrusting = await startPlugin(kc, { baseUrl: `https://127.0.0.1:${frontPort}`, allowHttp: false });
    t.after(() => untrusting.close());
    const e = await expectCode(untrusting.harness.proxy.getSecret({ name: `token/${RUNNER}` }), 'WM_ERR_CONFIGURATION', 'a certificate of an unknown CA');
    assert.equal((e.details as { reason?: string }).reason, 'tls');
  });

  it('with HTTPS_PROXY set, every request tunnels through the egress proxy; a target it refuses is WM_ERR_NETWORK', async (t) => {
    process.env['HTTPS_PROXY'] = `http://127.0.0.1:${proxyPort}`;
    t.after(() => {
      delete process.env['HTTPS_PROXY'];
    });
    allowed = [`127.0.0.1:${frontPort}`];
    const before = tunnels.length;
    const s = await startPlugin(kc, { baseUrl: `https://127.0.0.1:${frontPort}`, allowHttp: false, caFile: path.join(dir, 'ca.pem') });
    t.after(() => s.close());
    const secret = await s.harness.proxy.getSecret({ name: `client-secret/${RUNNER}` });
    assert.equal(secret.value, kc.client(RUNNER).secret);
    assert.equal(claims((await s.harness.proxy.getSecret({ name: `token/${RUNNER}` })).value as string)['azp'], RUNNER);
    assert.ok(tunnels.length > before, 'the requests went through the proxy');
    assert.ok(tunnels.slice(before).every((target) => target === `127.0.0.1:${frontPort}`));

    allowed = [];
    const refused = await startPlugin(kc, { baseUrl: `https://127.0.0.1:${frontPort}`, allowHttp: false, caFile: path.join(dir, 'ca.pem') });
    t.after(() => refused.close());
    await expectCode(refused.harness.proxy.getSecret({ name: `token/${RUNNER}` }), 'WM_ERR_NETWORK', 'a target outside the egress list (token endpoint)');
    await expectCode(refused.harness.proxy.getSecret({ name: `client-secret/${RUNNER}` }), 'WM_ERR_NETWORK', 'a target outside the egress list (admin API)');
  });

  it('in the restricted tier: its own process, network only through the host egress proxy to the listed Keycloak', async (t) => {
    const h = await startTestHost(
      `
host: { id: keycloak-sandbox, stateDir: \${DIR}/state }
plugins:
  - name: credentials-keycloak
    package: ${repoRoot}plugins/credentials-keycloak
    isolation: restricted
    env: { KEYCLOAK_ADMIN_SECRET: "\${KEYCLOAK_ADMIN_SECRET}" }
    # openid-client works on Node's Response and Headers, whose undici instantiates WebAssembly: about 10 GiB of
    # address space (not memory) per thread on top of the default.
    limits: { threads: 1, process: { memoryMb: 14336 } }
instances:
  - name: keycloak
    plugin: credentials-keycloak
    egress: ['127.0.0.1:${frontPort}']
    config:
      baseUrl: https://127.0.0.1:${frontPort}
      realm: ${kc.realm}
      caFile: ca.pem
      tokenSkewSeconds: 2
      admin: { clientId: ${ROTATOR}, secret: { env: KEYCLOAK_ADMIN_SECRET } }
      clients: [{ clientId: ${RUNNER}, rotate: true }]
`,
      {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', KEYCLOAK_ADMIN_SECRET: kc.client(ROTATOR).secret },
        beforeStart: async (dir) => {
          const stateDir = path.join(dir, 'state', 'instances', 'keycloak');
          await mkdir(stateDir, { recursive: true });
          await writeFile(path.join(stateDir, 'ca.pem'), await readFile(path.join(caDir(), 'ca.pem')));
        },
      },
    );
    t.after(() => h.stop());
    const creds = h.host.registry.proxy<CredentialProviderContract>('keycloak', 'credentials');
    const token = await creds.getSecret({ name: `token/${RUNNER}` });
    assert.equal(claims(token.value as string)['azp'], RUNNER);
    const old = await creds.getSecret({ name: `client-secret/${RUNNER}` });
    const created = await creds.createPendingVersion({ name: `client-secret/${RUNNER}` });
    assert.deepEqual([created.status, created.stages], ['active', ['current']]);
    assert.equal((await creds.getSecret({ name: `client-secret/${RUNNER}` })).value, kc.client(RUNNER).secret);
    assert.notEqual(kc.client(RUNNER).secret, old.value);
    const canaries = realmSecrets(kc, [RUNNER, ROTATOR], [token.value as string, old.value as string]);
    assertNoCanary(h.logs.join('\n'), canaries, 'the host logs');
  });
});
