import assert from 'node:assert/strict';
import { startSecretsManagerDouble } from '../doubles/awsSecretsManager.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { describeRotationLoad, VALUE_BYTES } from './rotationLoadScenario.ts';

// Issue 16: the rotation-under-load scenario (rotationLoadScenario.ts) against credentials-aws-secrets-manager, the real
// plugin and @aws-sdk/client-secrets-manager talking to the Secrets Manager double (SigV4 checked on every request).
// The keys reach the plugin only through its entry's `env`, as config/examples/aws-secrets-manager.yaml grants them.

const KEYS = { accessKeyId: 'AKIAWMROTLOADKEY0001', secretAccessKey: 'wm-rotation-load-secret-key/000000000000' };

await describeRotationLoad({
  title: 'credentials-aws-secrets-manager against the Secrets Manager double',
  tag: 'rotaws',
  instance: 'aws',
  async setup(t) {
    const d = await startSecretsManagerDouble({ principals: [KEYS] });
    t.after(() => d.close());
    return {
      pluginYaml: `  - name: aws-secrets
    package: ${repoRoot}plugins/credentials-aws-secrets-manager
    env: { AWS_ACCESS_KEY_ID: "\${KEY_ID}", AWS_SECRET_ACCESS_KEY: "\${SECRET_KEY}", AWS_EC2_METADATA_DISABLED: "true" }
    limits: { threads: 2, callTimeoutMs: 60000 }`,
      instanceYaml: `  - name: aws
    plugin: aws-secrets
    config: { region: ${d.region}, endpoint: "${d.url}", namePrefix: wm/, generatedValueBytes: ${VALUE_BYTES}, retry: { baseDelayMs: 20, maxDelayMs: 200 } }`,
      env: { KEY_ID: KEYS.accessKeyId, SECRET_KEY: KEYS.secretAccessKey },
      verify(chain) {
        // The staging labels as AWS holds them: one AWSCURRENT (the newest), AWSPENDING nowhere but (per AWS semantics,
        // harmlessly) on the current version, and every other version tagged revoked (its labels removed).
        const secret = d.secret('wm/token');
        assert.ok(secret !== undefined, 'the secret exists in the double');
        const newest = chain.at(-1) as string;
        const holders = (label: string): string[] => secret.versions.filter((v) => v.stages.includes(label)).map((v) => v.versionId);
        assert.deepEqual(holders('AWSCURRENT'), [newest]);
        assert.ok(holders('AWSPENDING').every((v) => v === newest), `AWSPENDING only on the current version: ${JSON.stringify(holders('AWSPENDING'))}`);
        // Revocation tags as docs/credentials-aws-secrets-manager.md describes them: `wm:revoked:<VersionId>`, and packs
        // `wm:revoked-set:<digest>` whose value lists VersionIds (100 revocations would not fit in 50 tags otherwise).
        const revoked = new Set(
          Object.entries(secret.tags).flatMap(([k, v]) => (k.startsWith('wm:revoked:') ? [k.slice('wm:revoked:'.length)] : k.startsWith('wm:revoked-set:') ? v.split(' ') : [])),
        );
        assert.ok(Object.keys(secret.tags).length <= 50, `${Object.keys(secret.tags).length} tags`);
        for (const v of secret.versions) {
          assert.equal(revoked.has(v.versionId), v.versionId !== newest, `version ${v.versionId} (${v.stages.join(',')}) revoked: ${revoked.has(v.versionId)}`);
        }
      },
    };
  },
});
