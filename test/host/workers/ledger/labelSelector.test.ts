import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { parseLabelSelector, selectorMatches } from '../../../../host/src/workers/ledger/labelSelector.ts';

describe('parseLabelSelector', () => {
  it('parses every form, with or without spaces, into four operations', () => {
    assert.deepEqual(parseLabelSelector(' a = 1 , b==2,c!=3, d in (x, y ,z), e notin (w), f, !g, example.com/h '), {
      requirements: [
        { key: 'a', op: 'in', values: ['1'] },
        { key: 'b', op: 'in', values: ['2'] },
        { key: 'c', op: 'notIn', values: ['3'] },
        { key: 'd', op: 'in', values: ['x', 'y', 'z'] },
        { key: 'e', op: 'notIn', values: ['w'] },
        { key: 'f', op: 'exists' },
        { key: 'g', op: 'notExists' },
        { key: 'example.com/h', op: 'exists' },
      ],
    });
    assert.deepEqual(parseLabelSelector('wm.tenant=acme,k='), { requirements: [{ key: 'wm.tenant', op: 'in', values: ['acme'] }, { key: 'k', op: 'in', values: [''] }] });
    assert.deepEqual(parseLabelSelector('in in (in)'), { requirements: [{ key: 'in', op: 'in', values: ['in'] }] }, 'operators are valid label names');
    assert.deepEqual(parseLabelSelector('   '), { requirements: [] });
  });

  // [selector, column, words of the problem]
  const bad: Array<[string, number, RegExp]> = [
    ['a=b,', 5, /expected a label key, found the end/],
    [',a', 1, /expected a label key, found ','/],
    ['team=a,,b', 8, /expected a label key/],
    ['!', 2, /expected a label key/],
    ['a in (b', 8, /expected ',' or '\)'/],
    ['a in (b,c', 10, /expected ',' or '\)'/],
    ['a in ()', 7, /must not be empty/],
    ['a notin b', 9, /expected '\(' after 'notin'/],
    ['a=b c', 5, /expected ',' or the end, found 'c'/],
    ['a!b', 2, /expected '!='/],
    ['a > 1', 3, /expected '=', '==', '!=', 'in', 'notin'/],
    ['a=(b)', 3, /expected a value, found '\('/],
    ['-a=b', 1, /key name '-a'/],
    [`${'k'.repeat(64)}=v`, 1, /key name 'k{64}' must be 1-63 characters/],
    ['Example.com/a=b', 1, /key prefix 'Example.com' must be a lowercase DNS subdomain/],
    ['x/y/z=1', 1, /key name 'y\/z'/],
    [`a=${'v'.repeat(64)}`, 3, /value 'v{64}' must be at most 63 characters/],
    ['a=-b', 3, /value '-b'/],
  ];
  for (const [selector, column, problem] of bad) {
    it(`refuses ${JSON.stringify(selector.length > 20 ? `${selector.slice(0, 20)}...` : selector)} at column ${column}`, () => {
      assert.throws(() => parseLabelSelector(selector), (error: unknown) => {
        assert.ok(error instanceof WorkerManagerError);
        assert.equal(error.code, 'HOST_ERR_LABEL_SELECTOR_INVALID');
        assert.equal(error.details?.['column'], column);
        assert.match(error.message, new RegExp(`at column ${column}: `));
        assert.match(error.message, problem);
        return true;
      });
    });
  }
});

describe('selectorMatches', () => {
  const labels = { app: 'web', tier: 'gold', 'example.com/zone': 'z1' };
  const cases: Array<[string, boolean]> = [
    ['', true],
    ['app=web', true],
    ['app==api', false],
    ['app!=api', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (api,web)', true],
    ['app in (api)', false],
    ['app notin (api)', true],
    ['app notin (web,api)', false],
    ['missing notin (x)', true],
    ['tier', true],
    ['missing', false],
    ['!missing', true],
    ['!tier', false],
    ['example.com/zone=z1,app=web,!missing', true],
    ['example.com/zone=z1,app=api', false],
    ['constructor', false],
  ];
  for (const [selector, expected] of cases) {
    it(`${JSON.stringify(selector)} ${expected ? 'matches' : 'does not match'}`, () => {
      assert.equal(selectorMatches(parseLabelSelector(selector), labels), expected);
    });
  }
});
