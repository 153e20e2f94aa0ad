import { createServer } from 'node:net';
import { describe } from 'node:test';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import plugin from '@worker-manager/plugin-credentials-aws-secrets-manager';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import { createPluginHarness, runCredentialConformance, type CredentialConformanceSession } from '@worker-manager/plugin-sdk/testing';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../../doubles/awsSecretsManager.ts';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { FAST_RETRY, grantTestEnv, TEST_KEYS } from './helpers.ts';

grantTestEnv();

const MAX_VALUE_BYTES = 65_536;

/** Keys only the sandboxed plugin is granted: the test process's own env holds TEST_KEYS, which its double refuses. */
const SANDBOX_KEYS = { accessKeyId: 'AKIAWMSANDBOXKEY0002', secretAccessKey: 'wm-sandbox-secret-key/00000000000000000000' };

/** The double each session talks to, so that hooks can reach past the plugin. */
const doubles = new WeakMap<CredentialConformanceSession, SecretsManagerDouble>();

async function session(deny?: '*'): Promise<CredentialConformanceSession> {
  const d = await startSecretsManagerDouble({ principals: [{ ...TEST_KEYS, ...(deny === undefined ? {} : { deny }) }] });
  const h = await createPluginHarness(plugin, { config: { region: d.region, endpoint: d.url, retry: FAST_RETRY, maxValueBytes: MAX_VALUE_BYTES } });
  const s: CredentialConformanceSession = {
    credentials: h.proxy,
    logs: () => h.logs,
    async teardown() {
      await h.close();
      await d.close();
    },
  };
  doubles.set(s, d);
  return s;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A version another tool wrote that the plugin's format check refuses (a NUL character), staged AWSPENDING. */
async function failingVersion(s: CredentialConformanceSession, name: string): Promise<string> {
  const d = doubles.get(s);
  if (d === undefined) throw new Error('no double for this session');
  const client = new SecretsManagerClient({ region: d.region, endpoint: d.url, credentials: TEST_KEYS, maxAttempts: 1 });
  try {
    const token = crypto.randomUUID();
    await client.send(new PutSecretValueCommand({ SecretId: name, ClientRequestToken: token, SecretString: 'not\u0000usable', VersionStages: ['AWSPENDING'] }));
    return token;
  } finally {
    client.destroy();
  }
}

describe('credentials-aws-secrets-manager', () => {
  runCredentialConformance({
    name: 'credentials-aws-secrets-manager',
    capabilities: plugin.capabilities,
    maxValueBytes: MAX_VALUE_BYTES,
    setup: () => session(),
    deniedSetup: () => session('*'),
    failingVersion,
    async unreachableSetup() {
      const port = await closedPort();
      const h = await createPluginHarness(plugin, { config: { region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 } } });
      return { credentials: h.proxy, logs: () => h.logs, teardown: () => h.close() };
    },
  });
});

// Through the host: the plugin's threads see only the env its entry grants (the keys), and find them with the SDK's
// standard provider chain; config, negotiation, sandbox threads and errors as data are the host's.
describe('credentials-aws-secrets-manager through the host sandbox', () => {
  runCredentialConformance({
    name: 'credentials-aws-secrets-manager (sandboxed)',
    capabilities: plugin.capabilities,
    maxValueBytes: MAX_VALUE_BYTES,
    async setup() {
      const d = await startSecretsManagerDouble({ principals: [SANDBOX_KEYS] });
      const t = await startTestHost(
        `
host: { id: aws-conformance, stateDir: \${DIR}/state }
plugins:
  - name: aws-secrets
    package: ${repoRoot}plugins/credentials-aws-secrets-manager
    env: { AWS_ACCESS_KEY_ID: "\${KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 2, callTimeoutMs: 60000 }
instances:
  - name: store
    plugin: aws-secrets
    config: { region: ${d.region}, endpoint: "${d.url}", retry: { baseDelayMs: 5, maxDelayMs: 40 } }
`,
        { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', KEY_ID: SANDBOX_KEYS.accessKeyId, SECRET_KEY: SANDBOX_KEYS.secretAccessKey } },
      );
      return {
        credentials: t.host.registry.proxy<CredentialProviderContract>('store', 'credentials'),
        logs: () => t.logs,
        async teardown() {
          await t.stop();
          await d.close();
        },
      };
    },
  });
});
