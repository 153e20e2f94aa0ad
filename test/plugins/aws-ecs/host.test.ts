import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { LogChunk, WorkerState } from '@worker-manager/plugin-sdk';
import type { EcsDouble } from '../../doubles/awsEcs.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { CLUSTER, IMAGE, startDouble, TEST_KEYS } from './helpers.ts';

const skip = await requireDocker();

const listening = (server: net.Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
const closing = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * The plugin in the restricted tier of a real host: its own bubblewrap-confined process, no network but the host's
 * egress proxy, whose list holds only the double's TLS front. Both AWS clients must go through `egressAgent` and trust
 * the front's private CA (`caFile` in the instance's state folder).
 */
describe('aws-ecs in the restricted tier of a real host, egress only to the double', { skip, timeout: budget(300_000) }, () => {
  let dir: string;
  let d: EcsDouble;
  let front: https.Server;
  let frontPort: number;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-ecs-tls-'));
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'ca.pem'),
    ]);
    d = await startDouble();
    const upstream = new URL(d.url);
    // TLS ends here; the double behind it speaks http. Headers pass unchanged, so SigV4 still holds.
    front = https.createServer({ key: await readFile(path.join(dir, 'key.pem')), cert: await readFile(path.join(dir, 'ca.pem')) }, (req, res) => {
      const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    frontPort = await listening(front);
  });

  after(async () => {
    front?.closeAllConnections();
    if (front !== undefined) await closing(front);
    await d?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** The front's CA in the instance's state folder, where `caFile: ca.pem` finds it. */
  const withCa = async (root: string, instance: string): Promise<void> => {
    const stateDir = path.join(root, 'state', 'instances', instance);
    await mkdir(stateDir, { recursive: true });
    await writeFile(path.join(stateDir, 'ca.pem'), await readFile(path.join(dir, 'ca.pem')));
  };

  it('creates a task, sees it Running with its output, and terminates it', { timeout: budget(240_000) }, async (t) => {
    const endpoint = `https://127.0.0.1:${frontPort}`;
    const h = await startTestHost(
      `
host: { id: ecs-sandbox, stateDir: \${DIR}/state }
plugins:
  - name: aws-ecs
    package: ${repoRoot}plugins/aws-ecs
    isolation: restricted
    env: { AWS_ACCESS_KEY_ID: "\${KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 1, callTimeoutMs: 60000 }
instances:
  - name: ecs
    plugin: aws-ecs
    egress: ['127.0.0.1:${frontPort}']
    config:
      region: ${d.region}
      endpoint: ${endpoint}
      logsEndpoint: ${endpoint}
      caFile: ca.pem
      cluster: ${CLUSTER}
      subnets: [subnet-0a1b2c3d]
      executionRoleArn: arn:aws:iam::${d.accountId}:role/ecsTaskExecutionRole
      logGroup: /wm/sandbox
      stopTimeoutSeconds: 5
      pollIntervalMs: 200
      retry: { baseDelayMs: 5, maxDelayMs: 40 }
`,
      {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', KEY_ID: TEST_KEYS.accessKeyId, SECRET_KEY: TEST_KEYS.secretAccessKey },
        beforeStart: async (root) => {
          await withCa(root, 'ecs');
        },
      },
    );
    t.after(() => h.stop());
    assert.deepEqual(
      h.report.map((r) => [r.instance, r.isolation, r.error === null ? r.state : `${r.state}: ${r.error.code} ${r.error.message}`]),
      [['ecs', 'restricted', 'running']],
    );
    const ecs = h.host.registry.provider('ecs');
    const workerId = 'sandboxed-1';
    const w = await ecs.createWorker({ workerId, spec: { image: IMAGE, command: ['sh', '-c', 'echo from-the-sandbox; exec sleep 600'] } });
    assert.equal(w.state.phase, 'Starting');
    await waitFor(async () => {
      const s: WorkerState = await ecs.getWorkerStatus({ workerId });
      return s.phase === 'Running';
    }, 'the task to run');
    await waitFor(async () => {
      const chunks: LogChunk[] = [];
      for await (const c of await ecs.getLogs({ workerId })) chunks.push(c);
      return chunks.some((c) => c.data.includes('from-the-sandbox'));
    }, 'its output through CloudWatch Logs');
    const r = await ecs.terminateWorker({ workerId });
    assert.deepEqual(r.state, { phase: 'Terminated', exitCode: 143 });
    assert.ok(d.calls.some((c) => c.operation === 'RunTask' && c.status === 200), 'the calls reached the double through the egress proxy');
    assert.ok(!h.logs.join('\n').includes(TEST_KEYS.secretAccessKey), 'the secret key is in no log line');
  });

  // Its own host: two restricted instances of a plugin whose bundle is not cached yet can race in the host's bundle
  // cache (see the report of this change); one instance per host keeps this test about the egress list.
  it("an endpoint outside the instance's egress list is refused: WM_ERR_NETWORK naming the egress list", { timeout: budget(240_000) }, async (t) => {
    const endpoint = `https://127.0.0.1:${frontPort}`;
    const h = await startTestHost(
      `
host: { id: ecs-sandbox-unlisted, stateDir: \${DIR}/state }
plugins:
  - name: aws-ecs
    package: ${repoRoot}plugins/aws-ecs
    isolation: restricted
    env: { AWS_ACCESS_KEY_ID: "\${KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 1, callTimeoutMs: 60000 }
instances:
  - name: ecs-unlisted
    plugin: aws-ecs
    # The double's front is not in this list: the egress proxy refuses it.
    egress: ['127.0.0.1:1']
    config:
      region: ${d.region}
      endpoint: ${endpoint}
      caFile: ca.pem
      cluster: ${CLUSTER}
      subnets: [subnet-0a1b2c3d]
      logGroup: /wm/sandbox
      retry: { baseDelayMs: 5, maxDelayMs: 40 }
`,
      {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', KEY_ID: TEST_KEYS.accessKeyId, SECRET_KEY: TEST_KEYS.secretAccessKey },
        beforeStart: (root) => withCa(root, 'ecs-unlisted'),
      },
    );
    t.after(() => h.stop());
    const before = d.calls.length;
    await assert.rejects(h.host.registry.provider('ecs-unlisted').listWorkers({}), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'WM_ERR_NETWORK');
      assert.match(e.message ?? '', /egress/);
      return true;
    });
    assert.equal(d.calls.length, before, 'nothing reached the double');
  });
});
