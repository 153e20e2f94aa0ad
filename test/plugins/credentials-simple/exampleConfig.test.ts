import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { CredentialsSimpleConfig } from '../../../plugins/credentials-simple/src/config.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';

describe('config/examples/credentials-simple.yaml', () => {
  it('is a valid host config whose credentials-simple instance config the plugin accepts, with the safe scrypt default', async () => {
    const result = await validateConfigFile(path.join(repoRoot, 'config/examples/credentials-simple.yaml'), { PATH: '/usr/bin:/bin' });
    assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.issues));
    const plugins = new Set(result.config.plugins.filter((p) => p.package.endsWith('plugins/credentials-simple')).map((p) => p.name));
    const instances = result.config.instances.filter((i) => plugins.has(i.plugin));
    assert.equal(instances.length, 1);
    const config = Value.Default(CredentialsSimpleConfig, structuredClone(instances[0]?.config)) as { scrypt?: { cost?: number } };
    assert.ok(Compile(CredentialsSimpleConfig).Check(config));
    assert.ok((config.scrypt?.cost ?? 0) >= 32_768, 'the example keeps the production scrypt cost');
  });
});
