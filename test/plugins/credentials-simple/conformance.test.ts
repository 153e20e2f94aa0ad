import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-simple';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import { createPluginHarness, runCredentialConformance } from '@worker-manager/plugin-sdk/testing';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { FAST_SCRYPT } from './helpers.ts';

// A small limit keeps the at-the-limit value cheap to encrypt and to carry across the thread boundary.
const MAX_VALUE_BYTES = 4096;

describe('credentials-simple', () => {
  runCredentialConformance({
    name: 'credentials-simple',
    capabilities: plugin.capabilities,
    maxValueBytes: MAX_VALUE_BYTES,
    async setup() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-creds-conformance-'));
      const keyFile = path.join(dir, 'key');
      await writeFile(keyFile, `${'c'.repeat(32)}\n`, { mode: 0o600 });
      const harness = await createPluginHarness(plugin, { stateDir: path.join(dir, 'state'), config: { keyFile, scrypt: FAST_SCRYPT, maxValueBytes: MAX_VALUE_BYTES } });
      return {
        credentials: harness.proxy,
        logs: () => harness.logs,
        async teardown() {
          await harness.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  });
});

// The same suite through everything the host puts between a caller and the plugin: config, negotiation (the
// capability secret.write.idempotent included), the sandbox threads, validation on both sides, errors as data.
describe('credentials-simple through the host sandbox', () => {
  runCredentialConformance({
    name: 'credentials-simple (sandboxed)',
    capabilities: plugin.capabilities,
    maxValueBytes: MAX_VALUE_BYTES,
    async setup() {
      const t = await startTestHost(
        `
host: { id: creds-conformance, stateDir: \${DIR}/state }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    env: { WM_CREDS_KEY: "\${WM_CREDS_KEY}" }
    limits: { threads: 2 }
instances:
  - name: store
    plugin: credentials-simple
    config: { keyEnv: WM_CREDS_KEY, maxValueBytes: ${MAX_VALUE_BYTES}, scrypt: { cost: 1024 } }
`,
        { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', WM_CREDS_KEY: 'conformance-key-material-0123456789' } },
      );
      return { credentials: t.host.registry.proxy<CredentialProviderContract>('store', 'credentials'), logs: () => t.logs, teardown: () => t.stop() };
    },
  });
});
