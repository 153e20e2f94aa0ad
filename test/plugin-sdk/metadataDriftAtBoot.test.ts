import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixturePlugin, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';

const BOOT_MS = budget(180_000);

/** Boots a host with the in-sync and the drifted fixture, each as its own plugin and instance. */
async function bootBoth(isolation: 'trusted' | 'restricted'): Promise<TestHost> {
  return startTestHost(`
host: { id: drift-${isolation}, stateDir: \${DIR}/state }
plugins:
  - name: in-sync
    package: ${fixturePlugin('metadata-in-sync')}
    isolation: ${isolation}
  - name: drifted
    package: ${fixturePlugin('metadata-drift')}
    isolation: ${isolation}
instances:
  - { name: good, plugin: in-sync, default: true }
  - { name: bad, plugin: drifted }
`);
}

function assertRefusedAndOtherRuns(t: TestHost): void {
  const bad = t.report.find((r) => r.instance === 'bad');
  const good = t.report.find((r) => r.instance === 'good');
  assert.equal(good?.state, 'running', `the in-sync fixture boots: ${JSON.stringify(good?.error)}`);
  assert.equal(bad?.state, 'failed');
  assert.equal(bad?.error?.code, 'HOST_ERR_PLUGIN_METADATA_DRIFT', bad?.error?.message);
  const message = bad?.error?.message ?? '';
  // STYLE 4: the plugin, its version and instance are named, and so is every difference with both sides' values.
  assert.match(message, /'metadata-drift@1\.0\.0'/);
  assert.match(message, /instance 'bad'/);
  assert.match(message, /workerManager\/capabilities\/worker\.logs: package\.json has "1\.0\.0", definePlugin has nothing/);
  assert.match(message, /workerManager\/configSchema\/properties\/region: package\.json has \{"type":"string"\}, definePlugin has nothing/);
}

describe('a plugin whose package.json drifted from its definePlugin call', () => {
  it('is refused at load with HOST_ERR_PLUGIN_METADATA_DRIFT naming each difference; an in-sync plugin beside it runs', { timeout: BOOT_MS }, async (t) => {
    const host = await bootBoth('trusted');
    t.after(() => host.stop());
    assertRefusedAndOtherRuns(host);
    // The in-sync instance really serves calls, so "running" is not only a report row.
    assert.deepEqual(await host.host.registry.provider('good').listWorkers({}), []);
  });

  it('is refused the same way inside the restricted sandbox (the block crosses the process boundary)', { timeout: BOOT_MS }, async (t) => {
    const host = await bootBoth('restricted');
    t.after(() => host.stop());
    assertRefusedAndOtherRuns(host);
  });
});
