import { randomBytes } from 'node:crypto';
import { repoRoot, fixturePlugin, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';

/** Key material of the test store; never a secret value, but scanned for too. */
export const STORE_KEY = 'broker-test-key-material-0123456789';

/** A distinctive secret value: a prefix that says what it is, and random hex so that a hit cannot be a coincidence. */
export function secretValue(label: string): string {
  return `wmsecret-${label}-${randomBytes(12).toString('hex')}`;
}

/**
 * Boots a real host with credentials-simple (instance `vault`), the process provider (instance `local`, default) and,
 * when asked, the secrets-recorder fixture provider (instance `rec`). Secrets named `team-a/<x>` belong to tenant
 * team-a, `team-b/**` to team-b, everything else to tenant default.
 */
export function startBrokerHost(options: { cacheTtlMs?: number; recorder?: boolean; api?: boolean; extraYaml?: string } = {}): Promise<TestHost> {
  const path = process.env['PATH'] ?? '/usr/bin:/bin';
  return startTestHost(
    `
host: { id: broker, stateDir: \${DIR}/state }
secrets:
  cacheTtlMs: ${options.cacheTtlMs ?? 5000}
  tenants:
    - { tenant: team-a, names: ["team-a/*"] }
    - { tenant: team-b, names: ["team-b/**"] }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    env: { WM_CREDS_KEY: "\${WM_CREDS_KEY}" }
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${path}" }
${options.recorder === true ? `  - name: secrets-recorder\n    package: ${fixturePlugin('secrets-recorder')}\n` : ''}instances:
  - name: vault
    plugin: credentials-simple
    config: { keyEnv: WM_CREDS_KEY, scrypt: { cost: 1024 } }
  - { name: local, plugin: process, default: true }
${options.recorder === true ? '  - { name: rec, plugin: secrets-recorder }\n' : ''}${options.extraYaml ?? ''}`,
    { env: { PATH: path, WM_CREDS_KEY: STORE_KEY } },
  );
}

/** The code of the error `promise` rejects with; fails when it resolves. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as { code?: string }).code ?? `uncoded: ${String(error)}`;
  }
  throw new Error('expected a rejection');
}
