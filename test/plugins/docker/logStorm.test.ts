import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_ARG_LENGTH, MAX_PATH_LENGTH } from '@worker-manager/plugin-sdk';
import { adminAuthorization } from '../../helpers/adminToken.ts';
import { apiCaller, inLanes, type ApiAnswer, type ApiRequest } from '../../helpers/malformedRequests.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget } from '../../helpers/waitFor.ts';
import { IMAGE, newHostId, ownedCounts, removeOwned, secretsRoot } from './helpers.ts';

const skip = await requireDocker();

// Regression: a storm of 1,000 oversized bad creates grew the host log by 54-71 MB. Each failed create writes one
// operation line with the error's message, and the message quoted what the engine quoted of the request: all 32,000
// characters of an entrypoint, a whole working directory. Every message and log line now carries at most 512 bytes
// of such text (boundText), cut with a marker that gives the original size.

/** Bad creates sent. */
const REQUESTS = 200;
/** In flight at once. */
const CONCURRENCY = 4;
/**
 * Log bytes one bad create may add. What the worst case (the entrypoint) writes: the API's access line (~200 bytes),
 * the operation line (`createWorker failed`: ~400 bytes of fields, and the message, at most 512 bytes of quoted text
 * and ~100 of its own: ~950 bytes in all), and two debug lines of the docker plugin (the engine's create and destroy
 * of the container it made, ~270 bytes each): ~1.7 KB. Before the fix that case alone wrote more than 32 KB.
 */
const MAX_LOG_BYTES_PER_REQUEST = 2_048;

const deepPath = (length: number): string => `/${Array.from({ length: Math.ceil(length / 100) }, () => 'd'.repeat(99)).join('/')}`.slice(0, length);

/** Creates the engine (or the system) refuses, each quoting, if it could, a large part of the request. */
const BAD_CREATES: Array<{ name: string; body: unknown; path?: string }> = [
  // The engine runs the entrypoint itself (no docker-init) and refuses the start quoting it whole.
  { name: '32,000-character entrypoint', body: { provider: 'bare', spec: { image: IMAGE, command: ['c'.repeat(MAX_ARG_LENGTH)] } } },
  { name: 'entrypoint path of 1,024 characters', body: { provider: 'bare', spec: { image: IMAGE, command: [deepPath(MAX_PATH_LENGTH)] } } },
  { name: 'workingDir with a 300-byte name', body: { provider: 'bare', spec: { image: IMAGE, command: ['true'], workingDir: `/w/${'w'.repeat(300)}` } }, path: '/spec/workingDir' },
  {
    name: 'HostPath of 1,024 characters outside allowedHostPaths',
    body: { provider: 'bare', spec: { image: IMAGE, command: ['true'], volumes: [{ mountPath: '/data', source: { type: 'HostPath', path: deepPath(MAX_PATH_LENGTH) } }] } },
    path: '/spec/volumes/0/source/path',
  },
  { name: 'process workingDir with a 300-byte name', body: { provider: 'local', spec: { command: ['true'], workingDir: 'w'.repeat(300) } }, path: '/spec/workingDir' },
];

const logBytes = (t: TestHost): number => t.logs.reduce((n, line) => n + Buffer.byteLength(line) + 1, 0);

describe('a storm of oversized bad creates through a real host', { skip, timeout: budget(600_000) }, () => {
  const hostId = newHostId('storm');
  let t: TestHost;
  let call: (request: ApiRequest) => Promise<ApiAnswer>;

  before(async () => {
    t = await startTestHost(`
host: { id: ${hostId}, stateDir: \${DIR}/state }
api: { enabled: true, port: 0 }
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
    # Two threads as in config/examples/docker.yaml; deadlines for a loaded machine (the storm is not about speed).
    limits: { threads: 2, callTimeoutMs: ${budget(120_000)}, hangTimeoutMs: ${budget(60_000)} }
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: bare, plugin: docker, default: true, config: { secretsDir: ${secretsRoot}, init: false, defaultGracePeriodMs: 0 } }
  - { name: local, plugin: process }
`);
    call = apiCaller(t.host.apiUrl ?? assert.fail('the API is not listening'), await adminAuthorization(t.host));
  });
  after(async () => {
    await t?.stop();
    await removeOwned(hostId);
  });

  it(`${REQUESTS} of them grow the host log by less than ${MAX_LOG_BYTES_PER_REQUEST} bytes each, and each answer names its field within a bounded message`, async (ctx) => {
    const before = logBytes(t);
    const failures: string[] = [];
    let longest = 0;
    await inLanes(REQUESTS, CONCURRENCY, async (n) => {
      const c = BAD_CREATES[n % BAD_CREATES.length]!;
      const res = await call({ method: 'POST', url: '/v1/workers', body: c.body });
      const message = String(res.body.message);
      longest = Math.max(longest, message.length);
      const named = String(res.body.details?.instancePath ?? res.body.details?.path ?? '');
      if (res.status !== 400 || res.body.code !== 'WM_ERR_VALIDATION' || (c.path !== undefined && named !== c.path)) {
        failures.push(`${c.name}: ${res.status} ${String(res.body.code)} at '${named}': ${message.slice(0, 200)}`);
      }
    });
    const grown = logBytes(t) - before;
    ctx.diagnostic(`the log grew by ${grown} bytes (${Math.round(grown / REQUESTS)} per request); longest message ${longest} characters`);
    assert.ok(grown < REQUESTS * MAX_LOG_BYTES_PER_REQUEST, `the log grew by ${grown} bytes for ${REQUESTS} requests (${Math.round(grown / REQUESTS)} per request)`);
    assert.ok(longest < 2_048, `the longest error message is ${longest} characters`);
    assert.deepEqual([...new Set(failures)], [], 'every bad create is a 400 WM_ERR_VALIDATION naming its field');
    assert.equal((await ownedCounts(hostId)).containers, 0, 'no container of a refused create is left');
  });
});
