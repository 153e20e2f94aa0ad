import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Compile } from 'typebox/compile';
import { definePlugin, isPluginDefinition, PluginMetadata, pluginMetadataOf, Type } from '@worker-manager/plugin-sdk';

const spec = {
  id: 'demo',
  version: '1.2.3',
  kind: 'provider' as const,
  hostApi: '^2.0.0',
  capabilities: { 'worker.lifecycle': '2.0.0', 'worker.exec': '1.0.0' },
  configSchema: Type.Object({ size: Type.Optional(Type.Integer({ minimum: 1, default: 4 })) }, { additionalProperties: false }),
  setup: () => {
    throw new Error('not called');
  },
};

describe('definePlugin / pluginMetadataOf', () => {
  it('returns a frozen, branded definition that any copy of the SDK recognises', () => {
    const def = definePlugin(spec);
    assert.ok(Object.isFrozen(def));
    assert.ok(isPluginDefinition(def));
    assert.equal((def as unknown as Record<symbol, unknown>)[Symbol.for('worker-manager.plugin')], true);
    assert.equal(isPluginDefinition({ ...spec }), false, 'a look-alike object is not a definition');
    assert.equal(isPluginDefinition(null), false);
  });

  it('derives valid metadata whose configSchema is plain JSON Schema', () => {
    const meta = pluginMetadataOf(definePlugin(spec));
    assert.ok(Compile(PluginMetadata).Check(meta));
    assert.deepEqual(meta, {
      id: 'demo',
      kind: 'provider',
      hostApi: '^2.0.0',
      capabilities: { 'worker.lifecycle': '2.0.0', 'worker.exec': '1.0.0' },
      configSchema: JSON.parse(JSON.stringify(spec.configSchema)) as Record<string, unknown>,
    });
    assert.equal(Object.getOwnPropertySymbols(meta.configSchema).length, 0, 'no typebox symbols');
    assert.equal(pluginMetadataOf(definePlugin({ ...spec, description: 'd' })).description, 'd');
  });

  it('the capabilities of the metadata are a copy', () => {
    const def = definePlugin(spec);
    const meta = pluginMetadataOf(def);
    meta.capabilities['worker.pause'] = '1.0.0';
    assert.equal(def.capabilities['worker.pause'], undefined);
  });
});
