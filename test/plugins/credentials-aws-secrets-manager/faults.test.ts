import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { budget } from '../../helpers/waitFor.ts';
import { canary, grantTestEnv, harness, rejection, startDouble, TEST_KEYS } from './helpers.ts';

grantTestEnv();

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const retried = (logs: ReadonlyArray<{ message: string; fields?: Record<string, unknown> }>) => logs.filter((l) => l.message === 'AWS call retried').map((l) => l.fields ?? {});

describe('credentials-aws-secrets-manager faults', () => {
  it('ThrottlingException is retried with backoff and counted; exhausted, it is a transient WM_ERR_RESOURCE_EXHAUSTED', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'busy', value: 'v' });
    d.injectFault({ kind: 'throttle' }, { count: 2, operation: 'GetSecretValue' });
    assert.equal((await h.proxy.getSecret({ name: 'busy' })).value, 'v');
    const first = retried(h.logs);
    assert.deepEqual(first.map((f) => [f['operation'], f['reason'], f['attempt'], f['throttledTotal']]), [
      ['GetSecretValue', 'throttled', 1, 1],
      ['GetSecretValue', 'throttled', 2, 2],
    ]);
    assert.ok(first.every((f) => typeof f['delayMs'] === 'number' && (f['delayMs'] as number) >= 1));
    d.injectFault({ kind: 'throttle' }, { operation: 'GetSecretValue' });
    const e = await rejection(() => h.proxy.getSecret({ name: 'busy' }));
    assert.equal(e.code, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.equal(e.transient, true);
    assert.deepEqual([e.details?.['reason'], e.details?.['attempts'], e.details?.['awsError']], ['throttled', 4, 'ThrottlingException']);
    assert.equal(retried(h.logs).at(-1)?.['throttledTotal'], 5, 'two, then three more before giving up on the fourth');
  });

  it('5xx is retried, then a transient WM_ERR_NETWORK; a single 500 is absorbed', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'flaky', value: 'v' });
    d.injectFault({ kind: 'error', status: 500, type: 'InternalServiceError' }, { count: 1, operation: 'DescribeSecret' });
    assert.equal((await h.proxy.getSecret({ name: 'flaky' })).value, 'v');
    d.injectFault({ kind: 'error', status: 503, type: 'ServiceUnavailable' }, { operation: 'DescribeSecret' });
    const e = await rejection(() => h.proxy.describe({ name: 'flaky' }));
    assert.equal(e.code, 'WM_ERR_NETWORK');
    assert.equal(e.transient, true);
    assert.deepEqual([e.details?.['reason'], e.details?.['httpStatus'], e.details?.['attempts']], ['server-error', 503, 4]);
  });

  it('a request that never answers times out per attempt: WM_ERR_TIMEOUT, transient', { timeout: budget(60_000) }, async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d, { requestTimeoutMs: 300, retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    await h.proxy.putSecret({ name: 'slow', value: 'v' });
    d.injectFault({ kind: 'hang' }, { operation: 'ListSecretVersionIds' });
    const before = d.calls.length;
    const e = await rejection(() => h.proxy.listVersions({ name: 'slow' }));
    assert.equal(e.code, 'WM_ERR_TIMEOUT');
    assert.equal(e.transient, true);
    assert.equal(e.details?.['attempts'], 2);
    assert.equal(d.calls.slice(before).filter((c) => c.operation === 'ListSecretVersionIds').length, 2);
  });

  it('connection resets are retried; persistent ones are a transient WM_ERR_NETWORK', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    await h.proxy.putSecret({ name: 'reset', value: 'v' });
    d.injectFault({ kind: 'reset' }, { count: 1, operation: 'GetSecretValue' });
    assert.equal((await h.proxy.getSecret({ name: 'reset' })).value, 'v');
    assert.equal(retried(h.logs).at(-1)?.['reason'], 'network');
    d.injectFault({ kind: 'reset' }, { operation: 'GetSecretValue' });
    const e = await rejection(() => h.proxy.getSecret({ name: 'reset' }));
    assert.equal(e.code, 'WM_ERR_NETWORK');
    assert.equal(e.transient, true);
    assert.equal(e.details?.['reason'], 'unreachable');
  });

  it('an endpoint nobody listens on is a transient WM_ERR_NETWORK', async (t) => {
    const port = await closedPort();
    const h = await harness(t, { url: `http://127.0.0.1:${port}`, region: 'us-east-1' }, { retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
    const e = await rejection(() => h.proxy.getSecret({ name: 'x' }));
    assert.equal(e.code, 'WM_ERR_NETWORK');
    assert.equal(e.transient, true);
    assert.equal(e.details?.['errno'], 'ECONNREFUSED');
  });

  it('a signature made with the wrong secret key is refused by the double (InvalidSignatureException): WM_ERR_AUTHENTICATION, not retried', async (t) => {
    // The double expects another secret key for the granted access key id, as AWS would after a key rotation.
    const d = await startDouble(t, 'the-secret-key-aws-actually-holds');
    const h = await harness(t, d);
    const e = await rejection(() => h.proxy.getSecret({ name: 'x' }));
    assert.equal(e.code, 'WM_ERR_AUTHENTICATION');
    assert.equal(e.transient, false);
    assert.equal(e.details?.['awsError'], 'InvalidSignatureException');
    assert.equal(e.details?.['attempts'], 1);
    assert.ok(!JSON.stringify(e).includes(TEST_KEYS.secretAccessKey));
    assert.ok(d.calls.every((c) => c.errorType === 'InvalidSignatureException'));
  });

  it('AccessDeniedException is WM_ERR_PERMISSION_DENIED for reads and writes, and the value written is in no error or log', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const secret = canary('denied');
    await h.proxy.putSecret({ name: 'locked', value: secret });
    d.setDeny(TEST_KEYS.accessKeyId, ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue']);
    const read = await rejection(() => h.proxy.getSecret({ name: 'locked' }));
    assert.equal(read.code, 'WM_ERR_PERMISSION_DENIED');
    assert.match(String(read.details?.['awsMessage']), /not authorized to perform: secretsmanager:GetSecretValue/);
    const write = await rejection(() => h.proxy.putSecret({ name: 'locked', value: `${secret}-2` }));
    assert.equal(write.code, 'WM_ERR_PERMISSION_DENIED');
    d.setDeny(TEST_KEYS.accessKeyId, '*');
    for (const call of [() => h.proxy.listVersions({ name: 'locked' }), () => h.proxy.createPendingVersion({ name: 'locked', value: `${secret}-3` })]) {
      const e = await rejection(call);
      assert.equal(e.code, 'WM_ERR_PERMISSION_DENIED');
      assert.ok(!JSON.stringify(e).includes(secret));
    }
    assert.ok(!JSON.stringify([read, write]).includes(secret));
    assert.ok(!JSON.stringify(h.logs).includes(secret));
  });

  it('canary values stay out of every error and log record along a whole faulty rotation', async (t) => {
    const d = await startDouble(t);
    const h = await harness(t, d);
    const values = [canary('v0'), canary('v1'), canary('v2')];
    const seen: unknown[] = [];
    await h.proxy.putSecret({ name: 'canary', value: { password: values[0] as string } });
    d.injectFault({ kind: 'throttle' }, { count: 1 });
    d.injectFault({ kind: 'error', status: 500, type: 'InternalServiceError' }, { count: 1 });
    const p = await h.proxy.createPendingVersion({ name: 'canary', value: values[1] as string, requestToken: 'canary-rotation' });
    seen.push(await rejection(() => h.proxy.createPendingVersion({ name: 'canary', value: values[2] as string, requestToken: 'canary-rotation' })));
    seen.push(await rejection(() => h.proxy.putSecret({ name: 'canary', value: `${values[2] as string}\u0000` })));
    d.injectFault({ kind: 'reset' }, { count: 1 });
    await h.proxy.promoteVersion({ name: 'canary', version: p.version });
    await h.proxy.revokeVersion({ name: 'canary', version: 'previous' });
    seen.push(await rejection(() => h.proxy.getSecret({ name: 'canary', version: 'previous' })));
    const text = JSON.stringify([seen, h.logs]);
    assert.ok(retried(h.logs).length >= 3, 'the faults were met');
    for (const v of values) assert.ok(!text.includes(v), 'no value in errors or logs');
  });
});
