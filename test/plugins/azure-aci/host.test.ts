import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isWorkerManagerError, type LogChunk } from '@worker-manager/plugin-sdk';
import type { AzureAciDouble } from '../../doubles/azureAci.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { waitFor, within } from '../../helpers/waitFor.ts';
import { CLIENT_ID, LOCATION, longSpec, newClientSecret, RESOURCE_GROUP, startDouble, SUBSCRIPTION, TENANT } from './helpers.ts';

const skip = await requireDocker();

// The plugin as an operator runs a vendor plugin: restricted tier (its own process under bubblewrap, no network but
// its instance's egress through the host's proxy, no host environment), the client secret granted through `env:` and
// the double's CA certificate in the instance's state folder (the only files it may read besides its package).
describe('azure-aci provider in a real host, restricted tier, egress limited to the ARM double', { skip, timeout: 600_000 }, () => {
  const secret = newClientSecret();
  let double: AzureAciDouble;
  let h: TestHost;

  before(async () => {
    double = await startDouble(secret, { provisioningDelayMs: 300 });
    const config = (extra: string): string =>
      `{ subscriptionId: ${SUBSCRIPTION}, resourceGroup: ${RESOURCE_GROUP}, location: ${LOCATION}, tenantId: ${TENANT}, clientId: ${CLIENT_ID}, clientSecret: { env: AZURE_CLIENT_SECRET }, authorityHost: "${double.url}", endpoint: "${double.url}", caCertFile: double-ca.pem, cpu: 0.5, memoryInGB: 0.5, pollIntervalMs: 250${extra} }`;
    h = await startTestHost(
      `
host: { id: h-aci, stateDir: \${DIR}/state }
plugins:
  - name: aci
    package: ${repoRoot}plugins/azure-aci
    isolation: restricted
    env: { AZURE_CLIENT_SECRET: "\${AZURE_CLIENT_SECRET}" }
    # The Azure SDK's formDataPolicy tests every request body with \`instanceof FormData\`, which loads undici and its
    # WebAssembly parser: ~10 GiB of address space that the default process limit refuses (plugin README, "Restricted tier").
    limits: { callTimeoutMs: 120000, threads: 1, process: { memoryMb: 16384 } }
instances:
  - { name: aci, plugin: aci, default: true, egress: ['${double.hostPort}'], config: ${config('')} }
  - { name: aci-closed, plugin: aci, config: ${config(', retry: { maxRetries: 0 }')} }
`,
      {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', AZURE_CLIENT_SECRET: secret },
        beforeStart: async (dir) => {
          for (const instance of ['aci', 'aci-closed']) {
            const stateDir = path.join(dir, 'state', 'instances', instance);
            await mkdir(stateDir, { recursive: true });
            await writeFile(path.join(stateDir, 'double-ca.pem'), double.ca);
          }
        },
      },
    );
  });
  after(async () => {
    try {
      await h?.stop();
    } finally {
      await double?.close();
    }
  });

  it('boots restricted and runs a worker through ARM: created, Running, logs, terminated', async () => {
    assert.deepEqual(
      h.report.filter((r) => r.instance.startsWith('aci')).map((r) => [r.instance, r.isolation, r.state]),
      [['aci', 'restricted', 'running'], ['aci-closed', 'restricted', 'running']],
    );
    const aci = h.host.registry.provider('aci');
    const worker = await aci.createWorker({ workerId: 'restricted-1', spec: longSpec('from-the-sandbox') });
    assert.ok(['Starting', 'Running'].includes(worker.state.phase));
    await waitFor(async () => (await aci.getWorkerStatus({ workerId: 'restricted-1' })).phase === 'Running', 'the worker to run', 60_000);
    await waitFor(async () => {
      let text = '';
      for await (const chunk of (await aci.getLogs({ workerId: 'restricted-1' })) as AsyncIterable<LogChunk>) text += chunk.data;
      return text.includes('from-the-sandbox');
    }, 'the marker in the logs', 60_000);
    assert.equal((await aci.terminateWorker({ workerId: 'restricted-1' })).alreadyGone, false);
    assert.equal(double.dockerIdOf(RESOURCE_GROUP, worker.providerRef!.split('/').at(-1)!), undefined);
    assert.ok(!h.logs.some((l) => l.includes(secret)), 'the client secret is in no host log line');
  });

  it("the host's worker service creates through the plugin, learns Running and the exit code by polling, and terminates", async () => {
    const created = await h.host.workers.createWorker({ provider: 'aci', workerId: 'restricted-2', spec: { image: longSpec('x').image!, command: ['sh', '-c', 'sleep 2; exit 4'] } });
    assert.equal(created.instance, 'aci');
    assert.ok(['Creating', 'Starting', 'Running'].includes(created.worker.state.phase), JSON.stringify(created.worker.state));
    // The plugin declares no worker.events: the host's ledger polls listWorkers / getWorkerStatus for the end.
    const ended = await waitFor(async () => {
      const s = await h.host.workers.getStatus('restricted-2');
      return s.state.phase === 'Failed' || s.state.phase === 'Terminated' ? s.state : undefined;
    }, 'the host to learn that the worker exited', 60_000);
    assert.deepEqual(ended, { phase: 'Failed', reason: 'ExitCode4', exitCode: 4 });
    await h.host.workers.terminateWorker('restricted-2');
    await assert.rejects(h.host.registry.provider('aci').getWorkerStatus({ workerId: 'restricted-2' }), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_NOT_FOUND');
  });

  it('an instance without egress to ARM cannot reach it: a coded error, and the double sees no request from it', async () => {
    const before = double.calls.length;
    const issued = double.tokens.issued;
    await assert.rejects(within(h.host.registry.provider('aci-closed').getWorkerStatus({ workerId: 'closed-1' }), 'the refused call', 120_000), (e: unknown) => {
      assert.ok(isWorkerManagerError(e), String(e));
      assert.ok(['WM_ERR_AUTHENTICATION', 'WM_ERR_NETWORK'].includes(e.code), `${e.code}: ${e.message}`);
      assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(secret));
      return true;
    });
    assert.equal(double.tokens.issued, issued, 'no token was issued to it');
    assert.equal(double.calls.length, before, 'no ARM request reached the double');
  });
});
