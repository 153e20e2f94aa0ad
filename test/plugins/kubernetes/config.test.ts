import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { KubernetesConfig, resolveConfig } from '@worker-manager/plugin-kubernetes';
import { loadKubeConfig } from '../../../plugins/kubernetes/src/kubeClient.ts';
import { collectOutput, finished } from '../../helpers/childProcess.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';

/** The `| \`field\` | ... |` rows of the table that follows `heading` in a Markdown file: field -> cells. */
function tableRows(file: string, heading: string): Map<string, string[]> {
  const text = readFileSync(path.join(repoRoot, file), 'utf8');
  const start = text.indexOf(heading);
  assert.ok(start !== -1, `${file} has the section '${heading}'`);
  const rows = new Map<string, string[]>();
  const lines = text.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('| `'));
  for (const line of lines.slice(first)) {
    const m = /^\| `([A-Za-z]+)` \|(.*)\|$/.exec(line);
    if (m === null) break;
    rows.set(m[1]!, m[2]!.split(' | ').map((c) => c.trim()));
  }
  return rows;
}

/** A schema default as the tables write it. */
const shown = (value: unknown): string => `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;

describe('kubernetes plugin config', () => {
  const fields = Object.entries(KubernetesConfig.properties) as Array<[string, { default?: unknown }]>;

  it('config/examples/kubernetes.yaml passes `wm config validate` (every instance config against the plugin\'s configSchema)', async () => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'host', 'bin', 'wm.js'), 'config', 'validate', 'config/examples/kubernetes.yaml'], {
      cwd: repoRoot,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = await finished(child, 'wm config validate config/examples/kubernetes.yaml', collectOutput(child));
    assert.equal(run.code, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /^ci-pool \(default\)\s+kubernetes\s.*validated/m);
    assert.match(run.stdout, /^in-cluster\s+kubernetes\s.*validated/m);
    assert.match(run.stdout, /config is valid/);
  });

  for (const [file, heading, defaultColumn] of [
    ['docs/configuration.md', '## The Kubernetes provider', 1],
    ['plugins/kubernetes/README.md', '## Configuration', 0],
  ] as const) {
    it(`${file} documents every config field, with the schema's default`, () => {
      const rows = tableRows(file, heading);
      assert.deepEqual([...rows.keys()].sort(), fields.map(([name]) => name).sort());
      for (const [name, schema] of fields) {
        if (schema.default === undefined) continue;
        assert.ok(rows.get(name)?.[defaultColumn]?.includes(shown(schema.default)), `${file}: ${name} defaults to ${shown(schema.default)}`);
      }
    });
  }

  it('inCluster without KUBERNETES_SERVICE_HOST and _PORT (not in the plugin\'s env) is WM_ERR_CONFIGURATION naming them', () => {
    const saved = { host: process.env['KUBERNETES_SERVICE_HOST'], port: process.env['KUBERNETES_SERVICE_PORT'] };
    delete process.env['KUBERNETES_SERVICE_HOST'];
    delete process.env['KUBERNETES_SERVICE_PORT'];
    try {
      assert.throws(
        () => loadKubeConfig(resolveConfig({ inCluster: true }), 'in-cluster'),
        (error: Error & { code?: string }) => error.code === 'WM_ERR_CONFIGURATION' && /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT in the plugin's env/.test(error.message),
      );
    } finally {
      if (saved.host !== undefined) process.env['KUBERNETES_SERVICE_HOST'] = saved.host;
      if (saved.port !== undefined) process.env['KUBERNETES_SERVICE_PORT'] = saved.port;
    }
  });
});
