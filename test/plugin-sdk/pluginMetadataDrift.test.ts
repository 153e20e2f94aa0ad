import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { definePlugin, pluginMetadataDrift, pluginMetadataOf, Type } from '@worker-manager/plugin-sdk';

const def = definePlugin({
  id: 'drifty',
  version: '1.2.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  capabilities: { 'worker.lifecycle': '2.0.0', 'worker.exec': '1.0.0' },
  configSchema: Type.Object({ endpoint: Type.String() }, { additionalProperties: false }),
  setup: () => {
    throw new Error('not run');
  },
});

const inSync = () => ({ version: '1.2.0', workerManager: structuredClone(pluginMetadataOf(def)) });

describe('pluginMetadataDrift', () => {
  it('is empty when package.json says what the definition says, whatever the key order', () => {
    const pkg = inSync();
    const { configSchema, ...rest } = pkg.workerManager;
    assert.deepEqual(pluginMetadataDrift({ version: '1.2.0', workerManager: { configSchema, ...rest } }, def), []);
  });

  it('names a capability only package.json declares, and one only the definition declares', () => {
    const pkg = inSync();
    pkg.workerManager.capabilities['worker.logs'] = '1.0.0';
    delete pkg.workerManager.capabilities['worker.exec'];
    assert.deepEqual(pluginMetadataDrift(pkg, def), [
      'workerManager/capabilities/worker.exec: package.json has nothing, definePlugin has "1.0.0"',
      'workerManager/capabilities/worker.logs: package.json has "1.0.0", definePlugin has nothing',
    ]);
  });

  it('names kind, hostApi, version and config schema differences with both values', () => {
    const pkg = inSync();
    pkg.version = '1.1.0';
    pkg.workerManager.kind = 'credentials';
    pkg.workerManager.hostApi = '^1.0.0';
    (pkg.workerManager.configSchema['properties'] as Record<string, unknown>)['endpoint'] = { type: 'integer' };
    assert.deepEqual(pluginMetadataDrift(pkg, def), [
      'version: package.json has "1.1.0", definePlugin has "1.2.0"',
      'workerManager/configSchema/properties/endpoint/type: package.json has "integer", definePlugin has "string"',
      'workerManager/hostApi: package.json has "^1.0.0", definePlugin has "^2.0.0"',
      'workerManager/kind: package.json has "credentials", definePlugin has "provider"',
    ]);
  });

  it('says so when package.json has no block, and bounds what a huge drift produces', () => {
    assert.deepEqual(pluginMetadataDrift({ version: '1.2.0' }, def), ['workerManager: package.json has no workerManager block']);
    const capabilities = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x.cap${i}`, 'x'.repeat(1_000)]));
    const lines = pluginMetadataDrift({ version: '1.2.0', workerManager: { ...pluginMetadataOf(def), capabilities } }, def);
    assert.ok(lines.length <= 21, `${lines.length} lines`);
    assert.equal(lines.at(-1), 'and more differences');
    assert.ok(lines.every((l) => l.length < 400));
  });
});
