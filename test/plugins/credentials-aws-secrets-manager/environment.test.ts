import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grantTestEnv, harness, rejection, startDouble, TEST_KEYS } from './helpers.ts';

grantTestEnv();

describe('credentials-aws-secrets-manager region and credentials from the granted env', () => {
  it('takes the region from AWS_REGION when the config has none; without either it is WM_ERR_CONFIGURATION', async (t) => {
    const d = await startDouble(t);
    const without = await harness(t, { url: d.url, region: d.region }, { region: undefined });
    const e = await rejection(() => without.proxy.getSecret({ name: 'x' }));
    assert.equal(e.code, 'WM_ERR_CONFIGURATION');
    assert.equal(e.details?.['reason'], 'no-region');
    process.env['AWS_REGION'] = d.region;
    t.after(() => delete process.env['AWS_REGION']);
    const fromEnv = await harness(t, { url: d.url, region: d.region }, { region: undefined });
    await fromEnv.proxy.putSecret({ name: 'x', value: 'v' });
    assert.equal((await fromEnv.proxy.getSecret({ name: 'x' })).value, 'v');
  });

  it('without credentials in the env the call is WM_ERR_AUTHENTICATION (reason no-credentials) and nothing reaches AWS', async (t) => {
    const d = await startDouble(t);
    delete process.env['AWS_ACCESS_KEY_ID'];
    delete process.env['AWS_SECRET_ACCESS_KEY'];
    t.after(() => {
      process.env['AWS_ACCESS_KEY_ID'] = TEST_KEYS.accessKeyId;
      process.env['AWS_SECRET_ACCESS_KEY'] = TEST_KEYS.secretAccessKey;
    });
    const h = await harness(t, d);
    const e = await rejection(() => h.proxy.getSecret({ name: 'x' }));
    assert.equal(e.code, 'WM_ERR_AUTHENTICATION');
    assert.equal(e.details?.['reason'], 'no-credentials');
    assert.equal(d.calls.length, 0);
  });
});
