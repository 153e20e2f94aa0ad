/**
 * credentials: issue 16, what the credential backends cost through the host, per backend (`vault`,
 * `aws-secrets-manager`, `keycloak`), each against a baseline measured in the same run. One real host (credential
 * plugins in their sandbox threads, SecretBroker, RotationEngine, process provider) talks to the protocol doubles
 * (test/doubles/vault.ts, test/doubles/awsSecretsManager.ts, test/doubles/keycloakAdmin.ts), which run in a child
 * process of their own (credentialDoubles.ts) as a real backend runs on another machine. Keycloak's secret is a client
 * secret (`client-secret/<clientId>`, read and regenerated through the admin API): the one kind of Keycloak secret the
 * engine rotates (a token is replaced by expiring), so all three measures are of the same secret kind.
 *
 * 1. p50_ms:resolve:<backend>: SecretBroker.resolve of one file ref with the cache cold: the broker's cache entry of
 *    the secret is dropped (SecretBroker.invalidate, inside the timed call) before every sample, so each sample takes
 *    the path a worker create takes when the value is not cached: tenant check, getSecret through the plugin's
 *    sandbox thread to the backend, mount instructions, the audit record of the release. Baseline: the same read
 *    done with the raw client library in this process against the same double (node-vault `read` of the key's data;
 *    the SDK's GetSecretValue; openid-client's fetchProtectedResource with the admin client's token, cached as the
 *    plugin caches it: the client looked up by clientId, then its client-secret, the two GETs the plugin makes), the
 *    value taken out of the answer. Alternating rounds, rotating which goes first (measure.ts latencies). Target:
 *    ratio <= 1.2.
 * 2. us:cache-hit:<backend>: SecretBroker.resolve of the same ref with the value cached (what a worker create pays
 *    for a secret resolved within the cache TTL). Baseline: an awaited lookup of the same value in a `Map`, the least
 *    any cache can cost; a `#` line also shows SecretCache.get alone, to tell the cache from the rest of resolve.
 * 3. p95_ms:rotation-to-20-workers:<backend>: from `host.rotation.rotate()` being called to all 20 process workers
 *    that hold the secret as a file mount (`onRotation: hot`) reading the new version, as the workers see it: each
 *    reader stamps its reads with the wall clock (test/helpers/rotationReader.ts, nice 19). Every backend (and the
 *    baseline) has its own 20 readers, all alive for the whole measurement; a reader pauses
 *    (backends + 1) ms between reads, so that all readers together read as often as rotation.bench's 20 readers at
 *    1 ms (busy readers starve a 2-core host, see test/integration/rotation-load.test.ts); that pause is the
 *    resolution of a sample. Baseline: the same rotation of a credentials-simple secret (a local encrypted file
 *    store, no network), in the same rounds, rotating which backend goes first. Rotations run one at a time with a
 *    pause after each; the grace period is long, so no revocation runs during the measurement. Target: p95 <= 500 ms.
 *
 * Prints `#` lines, then one JSON line per metric, backend by backend; the last line is the last backend's rotation.
 * Secret values are never printed: readers print fingerprints (8 characters of each end of a random value).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SecretRef, SecretValue } from '@worker-manager/plugin-sdk';
import nodeVault from 'node-vault';
import * as oidc from 'openid-client';
import { SecretCache } from '../../host/src/secrets/SecretCache.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../helpers/keycloakHostYaml.ts';
import { fingerprintOf, parseRotationReader, rotationReaderCommand, type Fingerprint } from '../helpers/rotationReader.ts';
import { repoRoot, startTestHost } from '../helpers/startTestHost.ts';
import { KEYCLOAK_CLIENTS, readAwsKeys, startCredentialDoubles, type CredentialDoubles } from './credentialDoubles.ts';
import { latencies, percentile } from './measure.ts';

const VALUE_BYTES = 192;
const READERS = 20;
const ROTATION_WARMUP = 3;
const ROTATIONS = 30;
/** Wait after each rotation, so that every reader has read it before the next one. */
const SETTLE_MS = 250;

/** A backend under measurement: its plugin entry, its instance, and the same read done with its raw client. */
interface Backend {
  /** Metric label, and the name of its credentials instance. */
  name: string;
  /** YAML of its `plugins:` entry and its `instances:` entry (list items, indented two spaces). */
  plugin: string;
  instance: string;
  /**
   * The secrets measured: resolved (1, 2) and rotated (3). A backend that takes values has them written first with
   * putSecret (`writable`); Keycloak generates its client secrets, and its double starts with them.
   */
  secrets: { resolve: string; rotate: string };
  writable: boolean;
  /** A client of the backend's own library on the same double, reading the current value of a secret. */
  rawClient(): Promise<RawClient>;
}

/** The secrets of a backend that takes values. */
const WRITTEN = { resolve: 'bench-resolve', rotate: 'bench-rotate' };

interface RawClient {
  read(name: string): Promise<string>;
  close(): void;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-bench-credentials-'));
const doubles: CredentialDoubles = await startCredentialDoubles(dir);
const awsKeys = await readAwsKeys(doubles);

const BACKENDS: Backend[] = [
  {
    name: 'vault',
    plugin: `
  - name: credentials-vault
    package: ${repoRoot}plugins/credentials-vault`,
    instance: `
  - name: vault
    plugin: credentials-vault
    config: { address: "${doubles.vault.address}", pathPrefix: ${doubles.vault.pathPrefix}, generatedValueBytes: ${VALUE_BYTES}, auth: { method: token, token: { file: "${doubles.vault.tokenFile}" } } }`,
    secrets: WRITTEN,
    writable: true,
    async rawClient() {
      // What an application would write with node-vault: one GET of the key's data (latest version), same token.
      const client = nodeVault({ endpoint: doubles.vault.address, apiVersion: 'v1', token: (await readFile(doubles.vault.tokenFile, 'utf8')).trim() });
      return {
        async read(name) {
          const body = (await client.read(`secret/data/${doubles.vault.pathPrefix}/${name}`)) as { data: { data: Record<string, string> } };
          // The plugin stores a string under `wm:value` (plugins/credentials-vault/README.md).
          const value = body.data.data['wm:value'];
          assert.equal(typeof value, 'string');
          return value as string;
        },
        close() {},
      };
    },
  },
  {
    name: 'aws-secrets-manager',
    // The keys reach the plugin's threads as the host grants env to a plugin (`env:`), found by the SDK's chain.
    plugin: `
  - name: credentials-aws-secrets-manager
    package: ${repoRoot}plugins/credentials-aws-secrets-manager
    env: { AWS_ACCESS_KEY_ID: "\${BENCH_AWS_KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${BENCH_AWS_SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }`,
    instance: `
  - name: aws-secrets-manager
    plugin: credentials-aws-secrets-manager
    config: { region: ${doubles.aws.region}, endpoint: "${doubles.aws.url}", generatedValueBytes: ${VALUE_BYTES} }`,
    secrets: WRITTEN,
    writable: true,
    async rawClient() {
      // The SDK as an application would use it: one GetSecretValue, SDK retries off as in the plugin (no retry happens).
      const client = new SecretsManagerClient({ region: doubles.aws.region, endpoint: doubles.aws.url, credentials: awsKeys, maxAttempts: 1 });
      return {
        async read(name) {
          const out = await client.send(new GetSecretValueCommand({ SecretId: name }));
          assert.equal(typeof out.SecretString, 'string');
          return out.SecretString as string;
        },
        close: () => client.destroy(),
      };
    },
  },
  {
    name: 'keycloak',
    plugin: `\n${keycloakPluginYaml.trimEnd()}`,
    instance: `\n${keycloakInstanceYaml(doubles.keycloak, {
      name: 'keycloak',
      admin: { clientId: KEYCLOAK_CLIENTS.admin, file: doubles.keycloak.adminSecretFile },
      clients: [{ clientId: KEYCLOAK_CLIENTS.resolve, rotate: true }, { clientId: KEYCLOAK_CLIENTS.rotate, rotate: true }],
    }).trimEnd()}`,
    secrets: { resolve: `client-secret/${KEYCLOAK_CLIENTS.resolve}`, rotate: `client-secret/${KEYCLOAK_CLIENTS.rotate}` },
    writable: false,
    async rawClient() {
      // What an application would write with openid-client: the admin client's token from a client credentials grant
      // (kept until half its lifetime, as the plugin keeps it), then the admin REST API with it as a bearer token.
      const { baseUrl, realm, issuer, adminSecretFile } = doubles.keycloak;
      const config = new oidc.Configuration({ issuer, token_endpoint: `${issuer}/protocol/openid-connect/token` }, KEYCLOAK_CLIENTS.admin, undefined, oidc.ClientSecretPost((await readFile(adminSecretFile, 'utf8')).trim()));
      oidc.allowInsecureRequests(config);
      let token: { value: string; renewAt: number } | undefined;
      const bearer = async (): Promise<string> => {
        if (token === undefined || Date.now() >= token.renewAt) {
          const grant = await oidc.clientCredentialsGrant(config);
          token = { value: grant.access_token, renewAt: Date.now() + ((grant.expires_in ?? 60) * 1_000) / 2 };
        }
        return token.value;
      };
      const admin = async (pathname: string): Promise<unknown> => {
        const res = await oidc.fetchProtectedResource(config, await bearer(), new URL(`${baseUrl}/admin/realms/${realm}${pathname}`), 'GET');
        assert.equal(res.status, 200);
        return res.json();
      };
      return {
        async read(name) {
          const clientId = name.slice('client-secret/'.length);
          const [client] = (await admin(`/clients?clientId=${encodeURIComponent(clientId)}`)) as Array<{ id: string }>;
          assert.ok(client !== undefined);
          const { value } = (await admin(`/clients/${client.id}/client-secret`)) as { value?: unknown };
          assert.equal(typeof value, 'string');
          return value as string;
        },
        close() {},
      };
    },
  },
];

/** The rotation baseline: a credentials-simple store (local file, no backend), rotated the same way. */
const SIMPLE = 'simple';
const names = [...BACKENDS.map((b) => b.name), SIMPLE];
const READ_PAUSE_MS = names.length;

const t = await startTestHost(
  `
host: { id: bench-credentials, stateDir: \${DIR}/state, logLevel: warn }
secrets:
  rotation:
    defaultGracePeriodMs: 600000
plugins:${BACKENDS.map((b) => b.plugin).join('')}
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    env: { WM_BENCH_KEY: "\${BENCH_SIMPLE_KEY}" }
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:${BACKENDS.map((b) => b.instance).join('')}
  - name: ${SIMPLE}
    plugin: credentials-simple
    config: { keyEnv: WM_BENCH_KEY, scrypt: { cost: 1024 }, generatedValueBytes: ${VALUE_BYTES}, maxVersions: 1000 }
  - { name: local, plugin: process, default: true, config: { maxWorkers: 500 } }
`,
  {
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      BENCH_AWS_KEY_ID: awsKeys.accessKeyId,
      BENCH_AWS_SECRET_KEY: awsKeys.secretAccessKey,
      BENCH_SIMPLE_KEY: randomBytes(32).toString('hex'),
    },
  },
);
const { host } = t;
for (const name of names) {
  const row = t.report.find((r) => r.instance === name);
  assert.ok(row !== undefined && row.state === 'running', `instance ${name} did not start: ${row?.error?.code ?? 'not in the report'} ${row?.error?.message ?? ''}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const now = (): number => performance.timeOrigin + performance.now();
const round = (n: number, d = 2): number => Number(n.toFixed(d));
const stats = (xs: number[]): { p50: number; p95: number } => {
  const s = Float64Array.from(xs).sort();
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95) };
};
const results: string[] = [];
function line(metric: string, value: number, baseline: number, unit: string, digits = 2): void {
  results.push(JSON.stringify({ bench: 'credentials', metric, value: round(value, digits), baseline: round(baseline, digits), ratio: round(value / baseline, 2), unit }));
}
const live = new Set<string>();

console.log(`# doubles in a child process; ${BACKENDS.length} backends (${BACKENDS.map((b) => b.name).join(', ')}), rotation baseline credentials-simple`);
try {
  // ---------------------------------------------------------------- 1 and 2: resolution, cold and cached
  const perBackend = new Map<string, { resolve: [number, number]; hit: [number, number] }>();
  for (const backend of BACKENDS) {
    const secret = backend.secrets.resolve;
    if (backend.writable) await host.registry.credentials(backend.name).putSecret({ name: secret, value: randomBytes(VALUE_BYTES).toString('base64url') });
    const raw = await backend.rawClient();
    const ref: SecretRef = { name: secret, credentials: backend.name, mount: 'file', path: 'token' };
    const resolve = (): Promise<unknown> => host.secrets.resolve({ workerId: 'bench-resolve', refs: [ref] });
    // Both paths must read the same value, or the comparison means nothing.
    host.secrets.invalidate(backend.name, secret);
    const [mount] = await host.secrets.resolve({ workerId: 'bench-resolve', refs: [ref] });
    assert.ok(mount !== undefined && mount.value === (await raw.read(secret)), `${backend.name}: the broker and the raw client read different values`);
    try {
      // Two more subjects, in the same rounds, to show where the broker's time goes (not part of the metric): the
      // plugin's getSecret through its sandbox proxy alone, and the audit record the broker writes (and syncs) per
      // release, of the same shape.
      const creds = host.registry.credentials(backend.name);
      const release = {
        kind: 'secret.release', principal: { id: 'host:bench-credentials', kind: 'service', tenant: 'default', source: 'host' }, action: 'secret:read', resource: 'Worker::bench-resolve',
        decision: 'allow', result: 'ok', details: { workerId: 'bench-resolve', tenant: 'default', secrets: [{ credentials: backend.name, name: secret, version: mount.version }] },
      } as const;
      const [cold, direct, proxied, audit] = await latencies(
        [
          () => {
            host.secrets.invalidate(backend.name, secret);
            return resolve();
          },
          () => raw.read(secret),
          () => creds.getSecret({ name: secret }),
          () => host.audit.record({ ...release, principal: { ...release.principal }, details: { ...release.details } }),
        ],
        { warmup: 20, perRound: 20, rounds: 10, rotate: true },
      );
      assert.ok(cold !== undefined && direct !== undefined && proxied !== undefined && audit !== undefined);
      const ms = (us: number): string => (us / 1_000).toFixed(3);
      console.log(`# ${backend.name} resolve, cache cold: broker p50 ${ms(cold.p50)} ms p95 ${ms(cold.p95)} ms | raw client p50 ${ms(direct.p50)} ms p95 ${ms(direct.p95)} ms (200 each, target p50 ratio <= 1.2)`);
      console.log(`#   of which: plugin getSecret through its sandbox thread p50 ${ms(proxied.p50)} ms p95 ${ms(proxied.p95)} ms; audit record of the release (written, fdatasync'd) p50 ${ms(audit.p50)} ms p95 ${ms(audit.p95)} ms`);

      // The broker's cache holds the value (TTL 5 s by default); a Map lookup of it is the baseline.
      await resolve();
      const map = new Map<string, SecretValue>([[JSON.stringify([backend.name, secret, 'current']), { name: secret, version: '1', value: 'x' }]]);
      const cache = new SecretCache(60_000);
      const fetched: SecretValue = { name: secret, version: '1', value: 'x' };
      await cache.get(backend.name, secret, undefined, () => Promise.resolve(fetched));
      const [hit, lookup, cacheOnly] = await latencies(
        [
          resolve,
          async () => map.get(JSON.stringify([backend.name, secret, 'current'])),
          () => cache.get(backend.name, secret, undefined, () => Promise.reject(new Error('the cache missed'))),
        ],
        { warmup: 200, perRound: 200, rounds: 10, rotate: true },
      );
      assert.ok(hit !== undefined && lookup !== undefined && cacheOnly !== undefined);
      console.log(`# ${backend.name} resolve, cache hit: broker p50 ${hit.p50.toFixed(1)} us p95 ${hit.p95.toFixed(1)} us | SecretCache.get alone p50 ${cacheOnly.p50.toFixed(2)} us | Map lookup p50 ${lookup.p50.toFixed(2)} us (2000 each)`);
      perBackend.set(backend.name, { resolve: [cold.p50 / 1_000, direct.p50 / 1_000], hit: [hit.p50, lookup.p50] });
    } finally {
      raw.close();
    }
  }

  // ---------------------------------------------------------------- 3: rotation to 20 file-mounted workers
  // The baseline (credentials-simple) is not in BACKENDS: it takes values, under the written name.
  const backendOf = (name: string): Backend | undefined => BACKENDS.find((b) => b.name === name);
  const secretOf = (name: string): string => backendOf(name)?.secrets.rotate ?? WRITTEN.rotate;
  for (const name of names) {
    if (backendOf(name)?.writable !== false) await host.registry.credentials(name).putSecret({ name: secretOf(name), value: randomBytes(VALUE_BYTES).toString('base64url') });
  }
  const readers = new Map(names.map((name) => [name, Array.from({ length: READERS }, (_, i) => `${name}-reader-${i}`)]));
  for (const name of names) {
    await Promise.all(
      (readers.get(name) ?? []).map(async (workerId) => {
        await host.workers.createWorker({
          workerId,
          spec: {
            command: rotationReaderCommand('token', { shell: 'bash', pauseMs: READ_PAUSE_MS, nice: true }),
            secretRefs: [{ name: secretOf(name), credentials: name, mount: 'file', path: 'token', onRotation: 'hot' }],
          },
        });
        live.add(workerId);
      }),
    );
  }
  console.log(`# rotation: ${live.size} reader workers (${READERS} per backend and baseline), ${READ_PAUSE_MS} ms between reads`);
  await sleep(500);

  const key = (f: Fingerprint): string => `${f.head}|${f.tail}|${f.length}`;
  const triggers = new Map<string, { at: number; backend: string; measured: boolean }>();
  const engineSide = new Map<string, number[]>(names.map((n) => [n, []]));
  for (let i = 0; i < ROTATION_WARMUP + ROTATIONS; i++) {
    const measured = i >= ROTATION_WARMUP;
    for (let k = 0; k < names.length; k++) {
      const name = names[(k + i) % names.length] as string;
      const at = now();
      const record = await host.rotation.rotate({ name: secretOf(name), credentials: name, requester: 'bench' });
      if (record.state !== 'in_progress' || record.newVersion === undefined || record.workers.length !== READERS) {
        throw new Error(`${name}: rotation ${record.id} ended ${record.state} with ${record.workers.length} workers: ${JSON.stringify(record.error ?? null)}`);
      }
      const { value } = await host.registry.credentials(name).getSecret({ name: secretOf(name), version: record.newVersion });
      triggers.set(key(fingerprintOf(String(value))), { at, backend: name, measured });
      if (measured && record.latencyMs !== undefined) engineSide.get(name)?.push(record.latencyMs);
      await sleep(SETTLE_MS);
    }
  }
  await sleep(SETTLE_MS);

  // Per change: the last of its 20 workers to read it.
  const firstSeen = new Map<string, number[]>();
  for (const workerId of live) {
    let text = '';
    for await (const chunk of await host.workers.getLogs(workerId)) text += chunk.data;
    const report = parseRotationReader(text);
    if (report.failures > 0 || report.garbage.length > 0) throw new Error(`${workerId}: ${report.failures} failed reads, ${report.garbage.length} unparsed lines`);
    for (const change of report.changes) {
      const k = key(change);
      if (!triggers.has(k) && change !== report.changes[0]) throw new Error(`${workerId} read a value no rotation brought (torn read?)`);
      firstSeen.set(k, [...(firstSeen.get(k) ?? []), change.firstAt]);
    }
  }
  const latency = new Map<string, number[]>(names.map((n) => [n, []]));
  const missing = new Map<string, number>(names.map((n) => [n, 0]));
  for (const [k, trigger] of triggers) {
    if (!trigger.measured) continue;
    const seen = firstSeen.get(k) ?? [];
    if (seen.length < READERS) missing.set(trigger.backend, (missing.get(trigger.backend) ?? 0) + 1);
    else latency.get(trigger.backend)?.push(Math.max(...seen) - trigger.at);
  }
  for (const name of names) {
    const s = stats(latency.get(name) ?? []);
    const e = stats(engineSide.get(name) ?? []);
    console.log(
      `# ${name} rotation to all ${READERS} readers (${latency.get(name)?.length ?? 0} rotations, ${missing.get(name) ?? 0} not seen by every reader): p50 ${s.p50.toFixed(1)} ms p95 ${s.p95.toFixed(1)} ms | engine's own latencyMs p50 ${e.p50.toFixed(0)} ms p95 ${e.p95.toFixed(0)} ms`,
    );
  }
  const base = stats(latency.get(SIMPLE) ?? []);
  for (const backend of BACKENDS) {
    const r = perBackend.get(backend.name);
    assert.ok(r !== undefined);
    line(`p50_ms:resolve:${backend.name}`, r.resolve[0], r.resolve[1], 'ms', 3);
    line(`us:cache-hit:${backend.name}`, r.hit[0], r.hit[1], 'us', 2);
    line(`p95_ms:rotation-to-${READERS}-workers:${backend.name}`, stats(latency.get(backend.name) ?? []).p95, base.p95, 'ms', 1);
  }
} finally {
  await Promise.allSettled([...live].map((workerId) => host.workers.terminateWorker(workerId, { gracePeriodMs: 0 })));
  await t.stop();
  await doubles.stop();
  await rm(dir, { recursive: true, force: true });
}
for (const l of results) console.log(l);
