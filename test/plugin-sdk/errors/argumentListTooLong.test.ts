import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { argumentListTooLong, execArgumentLimit, MAX_ARG_STRLEN } from '@worker-manager/plugin-sdk';

describe('argumentListTooLong', () => {
  it('names the one string over the per-string limit, quoting no value', () => {
    const e = argumentListTooLong([{ path: '/spec/args/0', text: 'ok' }, { path: '/spec/env/BIG', text: `BIG=${'v'.repeat(MAX_ARG_STRLEN)}` }], execArgumentLimit());
    assert.equal(e?.code, 'WM_ERR_VALIDATION');
    assert.equal(e?.details?.['instancePath'], '/spec/env/BIG');
    assert.equal(e?.details?.['errorCode'], 'E2BIG');
    assert.ok(!e?.message.includes('vvvv'), e?.message);
  });

  it('names the list holding the most bytes when all of them together are over the limit, and nothing when within it', () => {
    const args = Array.from({ length: 10 }, (_, i) => ({ path: `/spec/args/${i}`, text: 'a'.repeat(100) }));
    const env = [{ path: '/spec/env/A', text: `A=${'b'.repeat(300)}` }, { text: 'PATH=/usr/bin' }];
    assert.equal(argumentListTooLong([...args, ...env], 10_000), undefined);
    assert.equal(argumentListTooLong([...args, ...env], 1_000)?.details?.['instancePath'], '/spec/args');
    // Already refused by the system (limit 0): a field is named all the same.
    assert.equal(argumentListTooLong(env, 0)?.details?.['instancePath'], '/spec/env');
  });

  it('ARG_MAX follows the stack limit as Linux does', () => {
    assert.equal(execArgumentLimit(), 2 * 1024 * 1024);
    assert.equal(execArgumentLimit(256 * 1024), 128 * 1024);
    assert.equal(execArgumentLimit(Infinity), 6 * 1024 * 1024);
  });
});
