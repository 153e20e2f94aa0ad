import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import { Settings } from 'typebox/system';
import Value from 'typebox/value';
import { collectSchemaErrors } from '../../../host/src/config/collectSchemaErrors.ts';
import { convertEnvScalars } from '../../../host/src/config/convertEnvScalars.ts';
import { formatIssue, schemaIssues, type ConfigIssue } from '../../../host/src/config/formatIssues.ts';
import { parseConfig } from '../../../host/src/config/loadConfig.ts';

// A plugin's own config schema, as the registry sees it: it validates `instances[i].config` with it.
const PluginConfig = Type.Object(
  {
    endpoint: Type.String({ minLength: 1 }),
    maxWorkers: Type.Integer({ minimum: 1, default: 4 }),
    verbose: Type.Boolean({ default: false }),
    ratio: Type.Number({ default: 0.5 }),
    mode: Type.Union([Type.Literal('fast'), Type.Literal('safe')], { default: 'safe' }),
    port: Type.Union([Type.Integer(), Type.String({ pattern: '^[a-z]+$' })], { default: 80 }),
    auth: Type.Optional(
      Type.Union([
        Type.Object({ token: Type.String() }, { additionalProperties: false }),
        Type.Object({ user: Type.String(), password: Type.String() }, { additionalProperties: false }),
      ]),
    ),
    tags: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
    secretPassword: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const CONFIG = [
  'plugins:',
  '  - {name: p, package: ./p}',
  'instances:',
  '  - name: ok',
  '    plugin: p',
  '  - name: bad',
  '    plugin: p',
  '    config:',
  '      maxWorkers: 0',
  '      verbose: "yes"',
  '      mode: turbo',
  '      port: true',
  '      auth: {token: 5}',
  '      tags: [a, ""]',
  '      colour: red',
].join('\n');

function registryIssues(text: string, index: number, env: NodeJS.ProcessEnv = {}, withContext = true): ConfigIssue[] {
  const loaded = parseConfig(text, 'wm.yaml', { env });
  const pointer = `/instances/${index}/config`;
  const value = Value.Default(PluginConfig, convertEnvScalars(PluginConfig, loaded.config.instances[index]?.config, pointer, loaded.envScalars));
  const errors = collectSchemaErrors(Compile(PluginConfig), value);
  return schemaIssues(errors, pointer, loaded.locate, withContext ? { value, schema: PluginConfig } : {});
}

const summary = (issues: ConfigIssue[]): string[] => issues.map((i) => `${i.position?.line}:${i.position?.col} ${i.path}: ${i.message}`);

describe('schemaIssues for a plugin config (the registry path)', () => {
  it('gives one clear line per problem, located under the instance config', () => {
    assert.deepEqual(summary(registryIssues(CONFIG, 1)), [
      "8:5 /instances/1/config: missing required field 'endpoint'",
      '9:7 /instances/1/config/maxWorkers: must be >= 1',
      '10:7 /instances/1/config/verbose: expected boolean, found string',
      '11:7 /instances/1/config/mode: must be one of "fast", "safe"',
      '12:7 /instances/1/config/port: expected integer or string, found boolean',
      '13:7 /instances/1/config/auth: does not match any allowed form (closest: /token: expected string, found integer)',
      '14:17 /instances/1/config/tags/1: must not be empty',
      "15:7 /instances/1/config/colour: unknown field 'colour' (allowed: endpoint, maxWorkers, verbose, ratio, mode, port, auth, tags, secretPassword)",
    ]);
  });

  it('points a missing config block at the instance itself', () => {
    assert.deepEqual(summary(registryIssues(CONFIG, 0)), ["4:5 /instances/0/config: missing required field 'endpoint'"]);
  });

  it('still locates and names every problem without the value and the schema, only with less detail', () => {
    const lines = summary(registryIssues(CONFIG, 1, {}, false));
    assert.ok(lines.includes('10:7 /instances/1/config/verbose: expected boolean'), lines.join('\n'));
    assert.ok(lines.includes("15:7 /instances/1/config/colour: unknown field 'colour'"), lines.join('\n'));
    assert.ok(lines.includes('11:7 /instances/1/config/mode: expected "fast" or "safe"'), lines.join('\n'));
    assert.equal(lines.length, 8);
  });

  it('lists the allowed types for a union of scalars when the node itself is the problem', () => {
    const S = Type.Object({ v: Type.Union([Type.String(), Type.Integer()]) });
    const loaded = parseConfig('instances:\n  - name: a\n    plugin: p\n    config:\n      v: [1]\n', 'c.yaml', { env: {} });
    const value = loaded.config.instances[0]?.config;
    const issues = schemaIssues(collectSchemaErrors(Compile(S), value), '/instances/0/config', loaded.locate, { value, schema: S });
    assert.deepEqual(summary(issues), ['5:7 /instances/0/config/v: expected string or integer, found array']);
    assert.equal(issues[0]?.expected, 'string | integer');
  });

  it('falls back to the object-level error when a validator reports an unknown field only there', () => {
    const loaded = parseConfig('instances:\n  - name: a\n    plugin: p\n    config:\n      a: 1\n      zz: 2\n', 'c.yaml', { env: {} });
    const errors = [{ keyword: 'additionalProperties', schemaPath: '#', instancePath: '', params: { additionalProperties: ['zz'] }, message: 'must not have additional properties' }];
    assert.deepEqual(summary(schemaIssues(errors, '/instances/0/config', loaded.locate)), ["6:7 /instances/0/config/zz: unknown field 'zz'"]);
  });

  it('converts whole-value references in a plugin config with the plugin schema, and only there', () => {
    const text = [
      'instances:',
      '  - name: a',
      '    plugin: p',
      '    config:',
      '      endpoint: ${EP}',
      '      maxWorkers: ${MAX}',
      '      verbose: ${VERBOSE}',
      '      ratio: ${RATIO}',
      '      port: ${PORT}',
      '      secretPassword: ${PW}',
      '      tags: ["${MAX}"]',
    ].join('\n');
    const env = { EP: 'http://x', MAX: '7', VERBOSE: 'TRUE', RATIO: '2.5e-1', PORT: '8080', PW: '12345' };
    const loaded = parseConfig(text, 'c.yaml', { env });
    const converted = convertEnvScalars(PluginConfig, loaded.config.instances[0]?.config, '/instances/0/config', loaded.envScalars);
    assert.deepEqual(converted, { endpoint: 'http://x', maxWorkers: 7, verbose: true, ratio: 0.25, port: 8080, secretPassword: '12345', tags: ['7'] });
    assert.deepEqual(registryIssues(text, 0, { ...env, MAX: 'many' }).map((i) => i.message), ['expected integer, found string']);
    // The union takes a string that matches its pattern as a string, and turns digits into the integer it also takes.
    const again = parseConfig(text, 'c.yaml', { env: { ...env, PORT: 'http' } });
    assert.equal((convertEnvScalars(PluginConfig, again.config.instances[0]?.config, '/instances/0/config', again.envScalars) as { port: unknown }).port, 'http');
    // The registry has the schema as plain JSON (from the plugin's package.json): same result.
    const plain: unknown = JSON.parse(JSON.stringify(PluginConfig));
    const viaJson = parseConfig(text, 'c.yaml', { env });
    assert.deepEqual(convertEnvScalars(plain, viaJson.config.instances[0]?.config, '/instances/0/config', viaJson.envScalars), converted);
    // Only the type decides: a number out of range converts, and then fails on its range, not on its type.
    assert.deepEqual(summary(registryIssues(text, 0, { ...env, MAX: '0' })), ['6:7 /instances/0/config/maxWorkers: must be >= 1']);
  });
});

describe('collectSchemaErrors', () => {
  it('returns every error, beyond typebox\'s default limit of 8, and restores the limit', () => {
    const S = Type.Array(Type.Integer());
    const before = Settings.Get().maxErrors;
    const errors = collectSchemaErrors(Compile(S), Array.from({ length: 30 }, () => 'x'));
    assert.equal(errors.length, 30);
    assert.equal(Settings.Get().maxErrors, before);
    assert.ok([...Compile(S).Errors(Array.from({ length: 30 }, () => 'x'))].length <= before);
  });

  it('reports 30 problems of one config file at once', () => {
    const plugins = Array.from({ length: 30 }, (_, i) => `  - {name: p${i}, package: ./p, limits: {threads: 0}}`).join('\n');
    assert.throws(() => parseConfig(`plugins:\n${plugins}\n`, 'c.yaml', { env: {} }), { code: 'HOST_ERR_CONFIG_INVALID' });
    let issues: ConfigIssue[] = [];
    try {
      parseConfig(`plugins:\n${plugins}\n`, 'c.yaml', { env: {} });
    } catch (e) {
      issues = (e as { details: { issues: ConfigIssue[] } }).details.issues;
    }
    assert.equal(issues.length, 30);
    assert.equal(issues[29]?.path, '/plugins/29/limits/threads');
    assert.equal(issues[29]?.position?.line, 31);
  });
});

describe('formatIssue', () => {
  it('writes file:line:col: pointer: message, with the file relative to the working directory', () => {
    const file = path.resolve('config/default.yaml');
    assert.equal(
      formatIssue({ path: '/instances/0/config/maxWorkers', message: 'must be >= 1', position: { file, line: 12, col: 7 } }),
      'config/default.yaml:12:7: /instances/0/config/maxWorkers: must be >= 1',
    );
  });

  it('keeps an absolute path for a file outside the working directory, and leaves out what is missing', () => {
    const outside = path.resolve(process.cwd(), '..', 'elsewhere', 'wm.yaml');
    assert.equal(formatIssue({ path: '', message: 'Map keys must be unique', position: { file: outside, line: 1, col: 2 } }), `${outside}:1:2: Map keys must be unique`);
    assert.equal(formatIssue({ path: '/host', message: 'expected object' }), '/host: expected object');
  });
});
