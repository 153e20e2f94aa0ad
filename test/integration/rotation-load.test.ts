import { randomBytes } from 'node:crypto';
import { repoRoot } from '../helpers/startTestHost.ts';
import { describeRotationLoad, VALUE_BYTES } from './rotationLoadScenario.ts';

// Issue 5, "Rotation under load", against credentials-simple (an encrypted file in the instance's state folder). The
// scenario and why it is shaped as it is: rotationLoadScenario.ts; the same run against Vault and AWS Secrets Manager:
// rotation-load-vault.test.ts, rotation-load-aws.test.ts.

await describeRotationLoad({
  title: 'credentials-simple',
  tag: 'rotload',
  instance: 'vault',
  async setup() {
    const key = randomBytes(32).toString('hex');
    return {
      pluginYaml: `  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
    env: { WM_ROTATION_LOAD_KEY: "${key}" }`,
      instanceYaml: `  - name: vault
    plugin: credentials-simple
    config: { keyEnv: WM_ROTATION_LOAD_KEY, scrypt: { cost: 1024 }, generatedValueBytes: ${VALUE_BYTES} }`,
    };
  },
});
