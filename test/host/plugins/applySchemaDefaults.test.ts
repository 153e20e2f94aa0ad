import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@worker-manager/plugin-sdk';
import Value from 'typebox/value';
import { applySchemaDefaults } from '../../../host/src/plugins/applySchemaDefaults.ts';

// Plugins declare their config schema with typebox; the host only sees its JSON form from package.json.
const Config = Type.Object({
  endpoint: Type.String(),
  retries: Type.Integer({ default: 3 }),
  tls: Type.Object({ verify: Type.Boolean({ default: true }), ca: Type.Optional(Type.String()) }, { default: {} }),
  pools: Type.Array(Type.Object({ name: Type.String(), size: Type.Integer({ default: 1 }) }), { default: [] }),
});
const json = JSON.parse(JSON.stringify(Config)) as unknown;

describe('applySchemaDefaults', () => {
  it('fills missing fields, nested objects created from defaults, and array items', () => {
    const out = applySchemaDefaults(json, { endpoint: 'https://x', pools: [{ name: 'a' }, { name: 'b', size: 4 }] });
    assert.deepEqual(out, { endpoint: 'https://x', retries: 3, tls: { verify: true }, pools: [{ name: 'a', size: 1 }, { name: 'b', size: 4 }] });
  });

  it('keeps given values, including falsy ones, and does not mutate its input', () => {
    const input = { endpoint: 'e', retries: 0, tls: { verify: false } };
    const out = applySchemaDefaults(json, input);
    assert.deepEqual(out, { endpoint: 'e', retries: 0, tls: { verify: false }, pools: [] });
    assert.deepEqual(input, { endpoint: 'e', retries: 0, tls: { verify: false } });
  });

  it('agrees with typebox Value.Default on the typebox form of the same schema', () => {
    const value = { endpoint: 'https://x', pools: [{ name: 'a' }] };
    assert.deepEqual(applySchemaDefaults(json, value), Value.Default(Config, structuredClone(value)));
  });

  it('leaves non-object values and schemas without defaults alone', () => {
    assert.equal(applySchemaDefaults(json, 'nope'), 'nope');
    assert.deepEqual(applySchemaDefaults({ type: 'object' }, { a: 1 }), { a: 1 });
  });
});
