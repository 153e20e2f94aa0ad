import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptCapabilities, CAPABILITIES, capabilityRange } from '@worker-manager/plugin-sdk';

describe('acceptCapabilities', () => {
  it('accepts known capabilities of the contract at a compatible version', () => {
    const r = acceptCapabilities('worker-provider', { 'worker.lifecycle': '2.3.0', 'worker.exec': '1.4.2' });
    assert.deepEqual(r.accepted, { 'worker.lifecycle': '2.3.0', 'worker.exec': '1.4.2' });
    assert.deepEqual(r.ignored, []);
  });

  it('ignores, with the reason, unknown names, another contract, older or next-major versions and non-semver', () => {
    const r = acceptCapabilities('worker-provider', {
      'worker.teleport': '1.0.0',
      'secret.read': '1.0.0',
      'worker.exec': '0.9.0',
      'worker.pause': '2.0.0',
      'worker.restart': 'latest',
      // The synchronous create of contract 1: the host speaks lifecycle 2.
      'worker.lifecycle': '1.0.0',
    });
    assert.deepEqual(r.accepted, {});
    const reasons = Object.fromEntries(r.ignored.map((i) => [i.capability, i.reason]));
    assert.equal(reasons['worker.teleport'], 'unknown to this host');
    assert.equal(reasons['secret.read'], 'belongs to the credentials contract');
    for (const c of ['worker.exec', 'worker.pause', 'worker.restart'] as const) assert.equal(reasons[c], `host speaks ${capabilityRange(c)}`);
    assert.equal(reasons['worker.lifecycle'], 'host speaks ^2.0.0');
  });

  it('speaks lifecycle at 2 (asynchronous create) and every other capability at 1', () => {
    for (const [name, info] of Object.entries(CAPABILITIES)) assert.equal(info.version, name === 'worker.lifecycle' ? '2.0.0' : '1.0.0', name);
  });
});
