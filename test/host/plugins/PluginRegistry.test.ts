import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HOST_API_VERSION, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { parseConfig } from '../../../host/src/config/loadConfig.ts';
import { PluginRegistry, type ReportRow } from '../../../host/src/plugins/PluginRegistry.ts';
import type { SandboxSpec } from '../../../host/src/plugins/SandboxLike.ts';
import { PluginSandbox } from '../../../host/src/sandbox/PluginSandbox.ts';
import { budget } from '../../helpers/waitFor.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/plugins/', import.meta.url));
const fx = (name: string): string => path.join(fixtures, name);

const yaml = `
host:
  id: test-host
plugins:
  - name: echo
    package: ${fx('echo')}
  - name: host-api
    package: ${fx('negotiation-host-api')}
  - name: no-lifecycle
    package: ${fx('negotiation-no-lifecycle')}
  - name: old-exec
    package: ${fx('negotiation-old-exec')}
  - name: strict
    package: ${fx('negotiation-strict-config')}
    version: ^1.0.0
  - name: strict-too-new
    package: ${fx('negotiation-strict-config')}
    version: ^2.0.0
  - name: ghost-path
    package: ./does-not-exist
  - name: ghost-npm
    package: "@nobody/not-installed-plugin"
  - name: echo
    package: ${fx('echo')}
  - name: contract-1
    package: ${fx('negotiation-contract-1')}
instances:
  - name: healthy
    plugin: echo
  - name: old-api
    plugin: host-api
  - name: no-lifecycle
    plugin: no-lifecycle
  - name: plain-old-exec
    plugin: old-exec
  - name: needs-exec
    plugin: old-exec
    requireCapabilities: [worker.exec]
  - name: bad-config
    plugin: strict
    config:
      endpoint: ftp://example
      extra: 1
  - name: good-config
    plugin: strict
    config:
      endpoint: https://example
  - name: too-new
    plugin: strict-too-new
    config:
      endpoint: https://example
  - name: ghost-path
    plugin: ghost-path
  - name: ghost-npm
    plugin: ghost-npm
  - name: healthy
    plugin: echo
  - name: orphan
    plugin: not-declared
  - name: sync-create
    plugin: contract-1
`;

describe('PluginRegistry negotiation', () => {
  let dir: string;
  let registry: PluginRegistry;
  let report: ReportRow[];
  const started: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-registry-'));
    const file = path.join(dir, 'wm.yaml');
    await writeFile(file, yaml);
    const loaded = parseConfig(yaml, file, { env: {} });
    registry = new PluginRegistry({
      loaded,
      hostId: 'test-host',
      stateDir: path.join(dir, 'state'),
      sandboxFactory: (spec: SandboxSpec) => {
        started.push(spec.instance);
        return new PluginSandbox(spec);
      },
    });
    report = await registry.boot();
  });

  after(async () => {
    // Returns as soon as nothing is in flight; a loaded machine must not cut a drain short.
    await registry.stop({ timeoutMs: budget(30_000) });
    await rm(dir, { recursive: true, force: true });
  });

  const row = (instance: string): ReportRow => {
    const r = report.find((x) => x.instance === instance && x.error?.code !== 'HOST_ERR_DUPLICATE_INSTANCE');
    assert.ok(r, `no report row for ${instance}`);
    return r;
  };
  const failure = (instance: string): { code: string; message: string } => {
    const r = row(instance);
    assert.equal(r.state, 'failed', `${instance} should have failed`);
    assert.ok(r.error);
    return r.error;
  };

  it('runs plugin code only for instances that passed every check', () => {
    assert.deepEqual(started.sort(), ['good-config', 'healthy', 'plain-old-exec'].sort());
  });

  it('boots the healthy plugin beside the broken ones, and it answers calls', async () => {
    assert.equal(row('healthy').state, 'running');
    assert.equal(row('good-config').state, 'running');
    const echo = registry.provider('healthy');
    const worker = await echo.createWorker({ workerId: 'w-1', spec: { command: ['true'] } });
    assert.equal(worker.workerId, 'w-1');
  });

  it('refuses an incompatible hostApi, naming both versions', () => {
    const e = failure('old-api');
    assert.equal(e.code, 'HOST_ERR_HOST_API_MISMATCH');
    assert.match(e.message, /\^3\.0\.0/);
    assert.ok(e.message.includes(HOST_API_VERSION));
    const err = registry.instance('old-api').error;
    assert.equal(err?.details?.['plugin'], 'host-api');
    assert.equal(err?.details?.['version'], '1.0.0');
  });

  it('refuses a provider built for contract 1 (synchronous create) with its own code, before running its code', () => {
    const e = failure('sync-create');
    assert.equal(e.code, 'HOST_ERR_PLUGIN_CONTRACT_OUTDATED');
    assert.match(e.message, /'contract-1'@1\.4\.0 was built for worker-provider contract 1/);
    assert.match(e.message, /rebuild the plugin on a plugin-sdk whose HOST_API_VERSION is 2\.0\.0/);
    const err = registry.instance('sync-create').error;
    assert.equal(err?.details?.['found'], 'hostApi ^1.0.0, worker.lifecycle 1.0.0');
    assert.ok(!started.includes('sync-create'));
  });

  it('refuses a plugin lacking the required lifecycle capability', () => {
    const e = failure('no-lifecycle');
    assert.equal(e.code, 'HOST_ERR_CAPABILITY_MISSING');
    assert.equal(registry.instance('no-lifecycle').error?.details?.['capability'], 'worker.lifecycle');
  });

  it('ignores a capability declared at an incompatible version, and fails only the instance that requires it', () => {
    const plain = row('plain-old-exec');
    assert.equal(plain.state, 'running');
    assert.equal(plain.capabilities['worker.exec'], undefined);
    assert.deepEqual(plain.ignoredCapabilities.map((c) => c.capability).sort(), ['worker.exec', 'worker.teleport']);
    const e = failure('needs-exec');
    assert.equal(e.code, 'HOST_ERR_CAPABILITY_MISSING');
    assert.match(e.message, /worker\.exec/);
  });

  it('refuses a call to a capability that was not negotiated, without reaching the plugin', async () => {
    const proxy = registry.provider('plain-old-exec');
    await assert.rejects(proxy.executeCommand({ workerId: 'w-1', command: ['true'] }), (err: unknown) => err instanceof WorkerManagerError && err.code === 'WM_ERR_COMPATIBILITY');
  });

  it('reports an invalid instance config with file:line:col for each problem', () => {
    const e = failure('bad-config');
    assert.equal(e.code, 'HOST_ERR_INSTANCE_CONFIG_INVALID');
    // endpoint is on the line after `config:` of the bad-config instance.
    const lines = yaml.split('\n');
    const endpointLine = lines.findIndex((l) => l.includes('ftp://example')) + 1;
    const extraLine = lines.findIndex((l) => l.includes('extra: 1')) + 1;
    assert.match(e.message, new RegExp(`wm\\.yaml:${endpointLine}:\\d+: /instances/5/config/endpoint`));
    assert.match(e.message, new RegExp(`wm\\.yaml:${extraLine}:\\d+`));
    assert.match(e.message, /extra/);
    assert.match(e.message, /strict'@1\.2\.0/);
  });

  it('refuses a plugin version outside the accepted range', () => {
    const e = failure('too-new');
    assert.equal(e.code, 'HOST_ERR_PLUGIN_VERSION_MISMATCH');
    assert.match(e.message, /\^2\.0\.0/);
    assert.match(e.message, /1\.2\.0/);
  });

  it('reports unknown packages, by path and by npm name', () => {
    assert.equal(failure('ghost-path').code, 'HOST_ERR_PLUGIN_NOT_FOUND');
    const e = failure('ghost-npm');
    assert.equal(e.code, 'HOST_ERR_PLUGIN_NOT_FOUND');
    assert.match(e.message, /@nobody\/not-installed-plugin/);
  });

  it('rejects duplicate instance and plugin names with their own codes, keeping the first', () => {
    const dupInstance = report.filter((r) => r.error?.code === 'HOST_ERR_DUPLICATE_INSTANCE');
    assert.equal(dupInstance.length, 1);
    assert.equal(dupInstance[0]?.instance, 'healthy');
    assert.match(dupInstance[0]?.error?.message ?? '', /wm\.yaml:\d+:\d+: instance name 'healthy'/);
    const dupPlugin = report.filter((r) => r.error?.code === 'HOST_ERR_DUPLICATE_PLUGIN');
    assert.equal(dupPlugin.length, 1);
    assert.equal(dupPlugin[0]?.plugin, 'echo');
    assert.equal(started.filter((s) => s === 'healthy').length, 1);
  });

  it('reports an instance that names an undeclared plugin', () => {
    const e = failure('orphan');
    assert.equal(e.code, 'HOST_ERR_UNKNOWN_PLUGIN_REF');
    assert.match(e.message, /not-declared/);
  });

  it('routes nothing to failed instances', () => {
    assert.throws(() => registry.provider('bad-config'), { code: 'HOST_ERR_INSTANCE_UNAVAILABLE' });
    assert.throws(() => registry.provider('nope'), { code: 'HOST_ERR_INSTANCE_NOT_FOUND' });
  });
});

describe('PluginRegistry boot policy', () => {
  it('aborts the boot when a plugin with onBootFailure: abort fails, and stops what had started', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-registry-abort-'));
    const text = `
plugins:
  - name: echo
    package: ${fx('echo')}
  - name: host-api
    package: ${fx('negotiation-host-api')}
    onBootFailure: abort
instances:
  - { name: healthy, plugin: echo }
  - { name: old-api, plugin: host-api }
`;
    const sandboxes: PluginSandbox[] = [];
    const registry = new PluginRegistry({
      loaded: parseConfig(text, path.join(dir, 'wm.yaml'), { env: {} }),
      hostId: 'test-host',
      stateDir: path.join(dir, 'state'),
      sandboxFactory: (spec) => {
        const s = new PluginSandbox(spec);
        sandboxes.push(s);
        return s;
      },
    });
    try {
      await assert.rejects(registry.boot(), (err: unknown) => {
        assert.ok(err instanceof WorkerManagerError);
        assert.equal(err.code, 'HOST_ERR_BOOT_ABORTED');
        assert.equal((err.cause as WorkerManagerError).code, 'HOST_ERR_HOST_API_MISMATCH');
        assert.match(err.message, /host-api/);
        return true;
      });
      assert.equal(sandboxes.length, 1);
      assert.equal(sandboxes[0]?.state, 'stopped');
    } finally {
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
