import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canary, grantTestEnv, harness, rejection, startDouble } from './helpers.ts';

grantTestEnv();

describe('requestToken (secret.write.idempotent) mapped to ClientRequestToken', () => {
  it('putSecret: the same token and value return the same version and make none; another value is WM_ERR_CONFLICT', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const first = await h.proxy.putSecret({ name: 'idem', value: 'one', requestToken: 'put-0001' });
    const again = await h.proxy.putSecret({ name: 'idem', value: 'one', requestToken: 'put-0001' });
    assert.deepEqual(again, first);
    assert.equal(d.secret('idem')?.versions.length, 1, 'a retried CreateSecret becomes an idempotent PutSecretValue');
    const second = await h.proxy.putSecret({ name: 'idem', value: 'two', requestToken: 'put-0002' });
    assert.deepEqual(await h.proxy.putSecret({ name: 'idem', value: 'two', requestToken: 'put-0002' }), second);
    assert.equal(d.secret('idem')?.versions.length, 2);
    const secret = canary('conflict');
    const conflict = await rejection(() => h.proxy.putSecret({ name: 'idem', value: secret, requestToken: 'put-0002' }));
    assert.equal(conflict.code, 'WM_ERR_CONFLICT');
    assert.equal(conflict.details?.['awsError'], 'ResourceExistsException');
    assert.ok(!JSON.stringify(conflict).includes(secret));
    assert.equal(d.secret('idem')?.versions.length, 2);
    assert.equal((await h.proxy.getSecret({ name: 'idem' })).value, 'two');
  });

  it('the token maps to a 32-64 character ClientRequestToken deterministically, the same in every instance', async (t) => {
    const d = await startDouble(t);
    const a = await harness(t, d);
    await a.proxy.putSecret({ name: 'x', value: 'v0' });
    const p = await a.proxy.createPendingVersion({ name: 'x', value: 'v1', requestToken: 'short_tk' });
    assert.ok(p.version.length >= 32 && p.version.length <= 64);
    const b = await harness(t, d);
    assert.deepEqual(await b.proxy.createPendingVersion({ name: 'x', value: 'v1', requestToken: 'short_tk' }), p);
    assert.equal(d.secret('x')?.versions.length, 2);
  });

  it('createPendingVersion without a value and a used token returns the same pending version, its value generated once', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'gen', value: 'v0' });
    const first = await h.proxy.createPendingVersion({ name: 'gen', requestToken: 'rotation-2026-12-07' });
    const value = (await h.proxy.getSecret({ name: 'gen', version: 'pending' })).value;
    const again = await h.proxy.createPendingVersion({ name: 'gen', requestToken: 'rotation-2026-12-07' });
    assert.deepEqual(again, first);
    assert.equal((await h.proxy.getSecret({ name: 'gen', version: 'pending' })).value, value);
    assert.equal(d.secret('gen')?.versions.length, 2);
    assert.equal((await rejection(() => h.proxy.createPendingVersion({ name: 'gen', value: 'different', requestToken: 'rotation-2026-12-07' }))).code, 'WM_ERR_CONFLICT');
  });

  it('a write whose answer was lost is retried with the same ClientRequestToken and makes one version', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d, { requestTimeoutMs: 500 });
    await h.proxy.putSecret({ name: 'lost', value: 'v0' });
    // AWS stores the version, then the connection drops before the answer: the retry must not make a second one.
    d.injectFault({ kind: 'lose-answer' }, { count: 1, operation: 'PutSecretValue' });
    const v = await h.proxy.putSecret({ name: 'lost', value: 'v1' });
    const puts = d.calls.filter((c) => c.operation === 'PutSecretValue');
    assert.equal(puts.length, 2);
    assert.equal(puts[0]?.errorType, 'answer-lost');
    assert.equal(d.secret('lost')?.versions.length, 2);
    assert.equal((await h.proxy.getSecret({ name: 'lost' })).version, v.version);
  });
});
