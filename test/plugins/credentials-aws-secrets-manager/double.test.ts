import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { startSecretsManagerDouble, type SecretsManagerDouble } from '../../doubles/awsSecretsManager.ts';
import { TEST_KEYS } from './helpers.ts';

async function double(t: TestContext): Promise<SecretsManagerDouble> {
  const d = await startSecretsManagerDouble({ principals: [TEST_KEYS] });
  t.after(() => d.close());
  return d;
}

function client(t: TestContext, d: SecretsManagerDouble, secretAccessKey = TEST_KEYS.secretAccessKey, accessKeyId = TEST_KEYS.accessKeyId): SecretsManagerClient {
  const c = new SecretsManagerClient({ region: d.region, endpoint: d.url, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
  t.after(() => c.destroy());
  return c;
}

async function rejected(p: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number }; $fault?: string }> {
  try {
    await p;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

const token = (): string => randomUUID();

describe('AWS Secrets Manager double, driven by the real SDK', () => {
  it('checks SigV4: a wrong secret key gets InvalidSignatureException, an unknown key id UnrecognizedClientException', async (t) => {
    const d = await double(t);
    const good = client(t, d);
    await good.send(new CreateSecretCommand({ Name: 'sig/ok', SecretString: 'v1' }));
    const wrongKey = await rejected(client(t, d, 'not-the-secret-key').send(new GetSecretValueCommand({ SecretId: 'sig/ok' })));
    assert.equal(wrongKey.name, 'InvalidSignatureException');
    assert.equal(wrongKey.$metadata?.httpStatusCode, 400);
    assert.match(wrongKey.message, /^The request signature we calculated does not match the signature you provided/);
    const unknown = await rejected(client(t, d, 'x', 'AKIAUNKNOWNUNKNOWN00').send(new GetSecretValueCommand({ SecretId: 'sig/ok' })));
    assert.equal(unknown.name, 'UnrecognizedClientException');
    assert.equal(unknown.message, 'The security token included in the request is invalid.');
    // The right key still works afterwards, and reads back what was written.
    const got = await good.send(new GetSecretValueCommand({ SecretId: 'sig/ok' }));
    assert.equal(got.SecretString, 'v1');
  });

  it('checks the body against the signature: a request changed after signing is refused', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    const tamper = (next: (args: { request: unknown }) => Promise<unknown>) => async (args: { request: unknown }) => {
      const request = args.request as { body: string | Uint8Array };
      const text = request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : String(request.body);
      request.body = text.replace('tampered/a', 'tampered/b');
      return next(args);
    };
    c.middlewareStack.addRelativeTo(tamper as never, { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'tamperAfterSigning' });
    const e = await rejected(c.send(new CreateSecretCommand({ Name: 'tampered/a', SecretString: 'v' })));
    assert.equal(e.name, 'InvalidSignatureException');
    assert.equal(d.secret('tampered/b'), undefined);
  });

  it('refuses a request signed more than 5 minutes away from its clock', async (t) => {
    const d = await double(t);
    d.advanceClock(10 * 60_000);
    const e = await rejected(client(t, d).send(new DescribeSecretCommand({ SecretId: 'x' })));
    assert.equal(e.name, 'InvalidSignatureException');
    assert.match(e.message, /^Signature expired: /);
  });

  it('rule 2 and 3: the first value is AWSCURRENT; a plain put moves AWSCURRENT and AWSPREVIOUS follows; staged puts move only their labels', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    const v1 = token();
    const v2 = token();
    const v3 = token();
    const v4 = token();
    await c.send(new CreateSecretCommand({ Name: 'labels', SecretString: 'one', ClientRequestToken: v1 }));
    await c.send(new PutSecretValueCommand({ SecretId: 'labels', SecretString: 'two', ClientRequestToken: v2 }));
    await c.send(new PutSecretValueCommand({ SecretId: 'labels', SecretString: 'three', ClientRequestToken: v3, VersionStages: ['AWSPENDING'] }));
    let stages = (await c.send(new DescribeSecretCommand({ SecretId: 'labels' }))).VersionIdsToStages;
    assert.deepEqual(stages, { [v1]: ['AWSPREVIOUS'], [v2]: ['AWSCURRENT'], [v3]: ['AWSPENDING'] });
    await c.send(new PutSecretValueCommand({ SecretId: 'labels', SecretString: 'four', ClientRequestToken: v4, VersionStages: ['AWSPENDING'] }));
    stages = (await c.send(new DescribeSecretCommand({ SecretId: 'labels' }))).VersionIdsToStages;
    assert.deepEqual(stages, { [v1]: ['AWSPREVIOUS'], [v2]: ['AWSCURRENT'], [v4]: ['AWSPENDING'] }, 'rule 1: AWSPENDING left v3');
    const listed = await c.send(new ListSecretVersionIdsCommand({ SecretId: 'labels' }));
    assert.deepEqual(listed.Versions?.map((v) => v.VersionId).sort(), [v1, v2, v4].sort(), 'a version with no label is deprecated and hidden by default');
    const all = await c.send(new ListSecretVersionIdsCommand({ SecretId: 'labels', IncludeDeprecated: true, MaxResults: 2 }));
    assert.equal(all.Versions?.length, 2);
    assert.ok(all.NextToken);
  });

  it('rule 4: the same ClientRequestToken with the same value is ignored, with another value ResourceExistsException', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    const v1 = token();
    const v2 = token();
    await c.send(new CreateSecretCommand({ Name: 'idem', SecretString: 'one', ClientRequestToken: v1 }));
    await c.send(new PutSecretValueCommand({ SecretId: 'idem', SecretString: 'two', ClientRequestToken: v2 }));
    const again = await c.send(new PutSecretValueCommand({ SecretId: 'idem', SecretString: 'two', ClientRequestToken: v2 }));
    assert.equal(again.VersionId, v2);
    assert.equal(d.secret('idem')?.versions.length, 2);
    const e = await rejected(c.send(new PutSecretValueCommand({ SecretId: 'idem', SecretString: 'other', ClientRequestToken: v2 })));
    assert.equal(e.name, 'ResourceExistsException');
    assert.doesNotMatch(e.message, /other/);
  });

  it('rule 5: moving an attached label needs RemoveFromVersionId naming its holder; AWSCURRENT drags AWSPREVIOUS and cannot be removed alone', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    const v1 = token();
    const v2 = token();
    await c.send(new CreateSecretCommand({ Name: 'move', SecretString: 'one', ClientRequestToken: v1 }));
    await c.send(new PutSecretValueCommand({ SecretId: 'move', SecretString: 'two', ClientRequestToken: v2, VersionStages: ['AWSPENDING'] }));
    const missing = await rejected(c.send(new UpdateSecretVersionStageCommand({ SecretId: 'move', VersionStage: 'AWSCURRENT', MoveToVersionId: v2 })));
    assert.equal(missing.name, 'InvalidParameterException');
    assert.equal(
      missing.message,
      `The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version ${v1}, so you must explicitly reference that version in RemoveFromVersionId.`,
    );
    const wrong = await rejected(c.send(new UpdateSecretVersionStageCommand({ SecretId: 'move', VersionStage: 'AWSCURRENT', MoveToVersionId: v2, RemoveFromVersionId: v2 })));
    assert.equal(wrong.name, 'InvalidParameterException');
    const alone = await rejected(c.send(new UpdateSecretVersionStageCommand({ SecretId: 'move', VersionStage: 'AWSCURRENT', RemoveFromVersionId: v1 })));
    assert.equal(alone.name, 'InvalidParameterException');
    await c.send(new UpdateSecretVersionStageCommand({ SecretId: 'move', VersionStage: 'AWSCURRENT', MoveToVersionId: v2, RemoveFromVersionId: v1 }));
    const stages = (await c.send(new DescribeSecretCommand({ SecretId: 'move' }))).VersionIdsToStages;
    assert.deepEqual(stages, { [v1]: ['AWSPREVIOUS'], [v2]: ['AWSPENDING', 'AWSCURRENT'] });
  });

  it('rule 6: deprecated versions beyond the 100 newest go once older than 24 hours; labelled ones stay', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    const first = token();
    await c.send(new CreateSecretCommand({ Name: 'retain', SecretString: 'v0', ClientRequestToken: first }));
    for (let i = 1; i <= 101; i += 1) await c.send(new PutSecretValueCommand({ SecretId: 'retain', SecretString: `v${i}`, ClientRequestToken: token(), VersionStages: ['wm-test'] }));
    assert.equal(d.secret('retain')?.versions.length, 102, 'nothing older than 24 hours yet');
    d.advanceClock(25 * 3600_000);
    // A client whose clock agrees with the double's signs requests it accepts.
    const later = new SecretsManagerClient({ region: d.region, endpoint: d.url, credentials: TEST_KEYS, maxAttempts: 1, systemClockOffset: 25 * 3600_000 });
    t.after(() => later.destroy());
    await later.send(new PutSecretValueCommand({ SecretId: 'retain', SecretString: 'late', ClientRequestToken: token(), VersionStages: ['wm-test'] }));
    const versions = d.secret('retain')?.versions ?? [];
    assert.equal(versions.length, 101, 'the two oldest unlabelled versions beyond the 100 newest are gone');
    assert.equal(versions[0]?.versionId, first, 'the AWSCURRENT version is kept however old');
    assert.deepEqual(versions[0]?.stages, ['AWSCURRENT']);
  });

  it('rule 7 and faults: throttling, 5xx, connection reset, unknown secret, with the real error shapes', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    d.injectFault({ kind: 'throttle' }, { count: 1 });
    const throttled = await rejected(c.send(new DescribeSecretCommand({ SecretId: 'x' })));
    assert.equal(throttled.name, 'ThrottlingException');
    assert.equal(throttled.message, 'Rate exceeded');
    d.injectFault({ kind: 'error', status: 500, type: 'InternalServiceError' }, { count: 1 });
    const internal = await rejected(c.send(new DescribeSecretCommand({ SecretId: 'x' })));
    assert.equal(internal.name, 'InternalServiceError');
    assert.equal(internal.$fault, 'server');
    d.injectFault({ kind: 'reset' }, { count: 1 });
    const reset = await rejected(c.send(new DescribeSecretCommand({ SecretId: 'x' })));
    assert.equal((reset as Error & { code?: string }).code, 'ECONNRESET');
    const missing = await rejected(c.send(new GetSecretValueCommand({ SecretId: 'x' })));
    assert.equal(missing.name, 'ResourceNotFoundException');
    assert.equal(missing.message, "Secrets Manager can't find the specified secret.");
  });

  it('denies what the principal policy denies with AccessDeniedException, and CreateSecret with Tags needs TagResource too', async (t) => {
    const d = await double(t);
    const c = client(t, d);
    d.setDeny(TEST_KEYS.accessKeyId, ['secretsmanager:TagResource']);
    const e = await rejected(c.send(new CreateSecretCommand({ Name: 'tagged', SecretString: 'v', Tags: [{ Key: 'team', Value: 'a' }] })));
    assert.equal(e.name, 'AccessDeniedException');
    assert.match(e.message, /is not authorized to perform: secretsmanager:TagResource on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:tagged/);
    await c.send(new CreateSecretCommand({ Name: 'untagged', SecretString: 'v' }));
  });
});
