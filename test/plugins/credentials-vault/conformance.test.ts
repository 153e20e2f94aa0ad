import net from 'node:net';
import { describe } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-vault';
import { createPluginHarness, runCredentialConformance, type CredentialConformanceSession } from '@worker-manager/plugin-sdk/testing';
import { VaultDouble } from '../../doubles/vault.ts';
import { pluginPolicy } from './helpers.ts';

const MAX_VALUE_BYTES = 4096;

/** A fresh Vault double and a plugin instance logged in with `policies` through AppRole. */
async function session(policies: string[], address?: (vault: VaultDouble) => Promise<string>): Promise<CredentialConformanceSession> {
  const vault = await VaultDouble.start();
  vault.setPolicy('wm', pluginPolicy('wm'));
  const { roleId, secretId } = vault.addAppRole('wm', { policies, ttlSeconds: 600 });
  process.env['WM_CONFORMANCE_SECRET_ID'] = secretId;
  const harness = await createPluginHarness(plugin, {
    config: {
      address: address === undefined ? vault.address : await address(vault),
      pathPrefix: 'wm',
      maxValueBytes: MAX_VALUE_BYTES,
      readRetries: 0,
      auth: { method: 'approle', roleId, secretId: { env: 'WM_CONFORMANCE_SECRET_ID' } },
    },
  });
  return {
    credentials: harness.proxy,
    logs: () => harness.logs,
    async teardown() {
      await harness.close();
      await vault.close();
    },
  };
}

describe('credentials-vault', () => {
  runCredentialConformance({
    name: 'credentials-vault',
    capabilities: plugin.capabilities,
    maxValueBytes: MAX_VALUE_BYTES,
    setup: () => session(['wm']),
    deniedSetup: () => session([]),
    unreachableSetup: () =>
      session(['wm'], () => new Promise<string>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const { port } = s.address() as net.AddressInfo;
          s.close(() => resolve(`http://127.0.0.1:${port}`));
        });
      })),
  });
});
