import type { TestContext } from 'node:test';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import plugin from '@worker-manager/plugin-credentials-aws-secrets-manager';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../../doubles/awsSecretsManager.ts';

/** The key pair the tests' plugin instances sign with (granted to the plugin as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
export const TEST_KEYS: { accessKeyId: string; secretAccessKey: string } = { accessKeyId: 'AKIAWMTESTKEY0000001', secretAccessKey: 'wm-test-secret-key/0000000000000000000000' };

/**
 * The environment a host would grant the plugin (`env:` of its plugin entry): static keys for the SDK's provider chain,
 * and nothing that would send it to a profile, a web identity or the instance metadata service. Each test file runs in
 * its own process, so setting it here touches no other test.
 */
export function grantTestEnv(): void {
  for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_REGION', 'AWS_DEFAULT_REGION']) {
    delete process.env[k];
  }
  process.env['AWS_ACCESS_KEY_ID'] = TEST_KEYS.accessKeyId;
  process.env['AWS_SECRET_ACCESS_KEY'] = TEST_KEYS.secretAccessKey;
  process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
  process.env['AWS_CONFIG_FILE'] = '/nonexistent/wm-test-aws-config';
  process.env['AWS_SHARED_CREDENTIALS_FILE'] = '/nonexistent/wm-test-aws-credentials';
}

/** A double that knows the test keys (with `secretAccessKey` overriding the secret it expects), closed after the test. */
export async function startDouble(t: TestContext, secretAccessKey = TEST_KEYS.secretAccessKey): Promise<SecretsManagerDouble> {
  const d = await startSecretsManagerDouble({ principals: [{ accessKeyId: TEST_KEYS.accessKeyId, secretAccessKey }] });
  t.after(() => d.close());
  return d;
}

/** Retries fast enough for tests; the shipped defaults are 4 attempts from 200 ms. */
export const FAST_RETRY = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 40 };

/** The plugin pointed at the double through `endpoint`, closed after the test. */
export async function harness(t: TestContext, d: { url: string; region: string }, config: Record<string, unknown> = {}): Promise<PluginHarness<'credentials'>> {
  const h = await createPluginHarness(plugin, { config: { region: d.region, endpoint: d.url, retry: FAST_RETRY, ...config } });
  t.after(() => h.close());
  return h;
}

/** A plain SDK client on the double, signing with the test keys, for setting up and inspecting state. */
export function sdk(t: TestContext, d: SecretsManagerDouble): SecretsManagerClient {
  const c = new SecretsManagerClient({ region: d.region, endpoint: d.url, credentials: TEST_KEYS, maxAttempts: 1 });
  t.after(() => c.destroy());
  return c;
}

/** A WorkerManagerError as the host sees it. */
export interface SeenError {
  code: string;
  message: string;
  transient: boolean;
  details?: Record<string, unknown>;
}

/** Calls `fn` and returns the error it rejects with; fails when it resolves. */
export async function rejection(fn: () => Promise<unknown>): Promise<SeenError> {
  try {
    await fn();
  } catch (error) {
    return error as SeenError;
  }
  throw new Error('expected a rejection');
}

/** A value nobody would write by chance, to search for in errors and logs. */
export function canary(label: string): string {
  return `CANARY-${label}-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
}
