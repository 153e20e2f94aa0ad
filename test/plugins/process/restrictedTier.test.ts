import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { budget } from '../../helpers/waitFor.ts';

describe('process plugin under the restricted tier', () => {
  it('refuses to start, saying it needs isolation: trusted', { timeout: budget(120_000) }, async (t) => {
    const host = await startTestHost(`
host: { id: restricted, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    isolation: restricted
instances:
  - { name: local, plugin: process, default: true }
`);
    t.after(() => host.stop());
    const row = host.report.find((r) => r.instance === 'local');
    assert.equal(row?.state, 'failed');
    assert.match(row?.error?.message ?? '', /isolation: trusted/);
  });
});
