import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { collectSchemaErrors } from '../../../host/src/config/collectSchemaErrors.ts';
import { convertEnvScalars } from '../../../host/src/config/convertEnvScalars.ts';
import { formatIssue, schemaIssues } from '../../../host/src/config/formatIssues.ts';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { ProcessConfig } from '../../../plugins/process/src/config.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = path.join(root, 'test/fixtures/config');

// Variables the examples need without a default (secrets the operator must provide).
const EXAMPLE_ENV = { ...process.env, ACME_API_TOKEN: 'example-token' };

describe('validateConfigFile', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'wm-validate-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('returns the config and the loaded file for a valid config', async () => {
    const result = await validateConfigFile(path.join(fixtures, 'minimal.yaml'), {});
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.equal(result.config.instances[0]?.name, 'local');
    assert.equal(result.loaded.config, result.config);
    assert.equal(result.loaded.file, path.join(fixtures, 'minimal.yaml'));
  });

  it('returns every problem and the code instead of throwing, for each kind of bad input', async () => {
    const cases: Array<[string, NodeJS.ProcessEnv, string, number]> = [
      [path.join(fixtures, 'invalid.yaml'), {}, 'HOST_ERR_CONFIG_INVALID', 9],
      [path.join(fixtures, 'syntax-error.yaml'), {}, 'HOST_ERR_CONFIG_PARSE', 3],
      [path.join(fixtures, 'duplicate-key.yaml'), {}, 'HOST_ERR_CONFIG_PARSE', 1],
      [path.join(fixtures, 'env.yaml'), {}, 'HOST_ERR_CONFIG_ENV_MISSING', 6],
    ];
    for (const [file, env, code, count] of cases) {
      const result = await validateConfigFile(file, env);
      assert.equal(result.ok, false, file);
      if (result.ok) continue;
      assert.equal(result.code, code, file);
      assert.equal(result.issues.length, count, `${file}:\n${result.issues.map(formatIssue).join('\n')}`);
      assert.ok(result.issues.every((i) => i.position?.file === file && i.position.line >= 1 && i.position.col >= 1), file);
    }
  });

  it('turns a missing file into one issue naming the path', async () => {
    const missing = path.join(tmp, 'missing.yaml');
    const result = await validateConfigFile(missing, {});
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.equal(result.code, 'HOST_ERR_CONFIG_NOT_FOUND');
    assert.equal(result.issues.length, 1);
    assert.ok(result.issues[0]?.message.includes(missing));
  });

  it('uses process.env when no environment is given', async () => {
    const file = path.join(tmp, 'env.yaml');
    await writeFile(file, 'host:\n  id: ${WM_TEST_VALIDATE_ID:-fallback-id}\n');
    const result = await validateConfigFile(file);
    assert.equal(result.ok, true);
    if (result.ok) assert.equal(result.config.host.id, process.env.WM_TEST_VALIDATE_ID || 'fallback-id');
  });
});

describe('shipped configs', () => {
  const examplesDir = path.join(root, 'config/examples');

  it('has the examples the docs point to', async () => {
    const names = await readdir(examplesDir);
    assert.ok(names.includes('process-two-instances.yaml'));
    assert.ok(names.includes('restricted-plugin.yaml'));
  });

  it('every file in config/examples/ and config/default.yaml passes validateConfigFile', async () => {
    const files = (await readdir(examplesDir)).filter((n) => /\.ya?ml$/.test(n)).map((n) => path.join(examplesDir, n));
    const defaultConfig = path.join(root, 'config/default.yaml');
    if (existsSync(defaultConfig)) files.push(defaultConfig);
    assert.ok(files.length >= 2);
    for (const file of files) {
      const result = await validateConfigFile(file, EXAMPLE_ENV);
      assert.ok(result.ok, `${file}:\n${result.ok ? '' : result.issues.map(formatIssue).join('\n')}`);
    }
  });

  it('the process plugin instances of the examples have configs the process plugin accepts', async () => {
    const check = Compile(ProcessConfig);
    let checked = 0;
    for (const name of ['process-two-instances.yaml', 'restricted-plugin.yaml']) {
      const result = await validateConfigFile(path.join(examplesDir, name), EXAMPLE_ENV);
      assert.ok(result.ok);
      if (!result.ok) continue;
      const { config, envScalars, locate } = result.loaded;
      const processPlugins = new Set(config.plugins.filter((p) => p.package.endsWith('plugins/process')).map((p) => p.name));
      config.instances.forEach((instance, index) => {
        if (!processPlugins.has(instance.plugin)) return;
        const pointer = `/instances/${index}/config`;
        const value = Value.Default(ProcessConfig, convertEnvScalars(ProcessConfig, structuredClone(instance.config), pointer, envScalars));
        const issues = schemaIssues(collectSchemaErrors(check, value), pointer, locate, { value, schema: ProcessConfig });
        assert.deepEqual(issues.map(formatIssue), [], `${name} ${instance.name}`);
        checked += 1;
      });
    }
    assert.equal(checked, 2, 'process-two-instances.yaml has two process instances');
  });
});
