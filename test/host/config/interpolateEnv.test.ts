import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isWorkerManagerError, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ConfigIssue } from '../../../host/src/config/formatIssues.ts';
import { interpolateString } from '../../../host/src/config/interpolateEnv.ts';
import { loadConfig, parseConfig } from '../../../host/src/config/loadConfig.ts';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';

const envFixture = fileURLToPath(new URL('../../fixtures/config/env.yaml', import.meta.url));

const FULL_ENV = {
  WM_TEST_HOST_ID: 'host-7',
  WM_TEST_TIMEOUT: '750',
  WM_TEST_TOKEN: 'tok-123',
  WM_TEST_NAME: 'bob',
  WM_TEST_MAX_WORKERS: '12',
};

function failure(text: string, env: NodeJS.ProcessEnv): WorkerManagerError {
  try {
    parseConfig(text, 'c.yaml', { env });
  } catch (error) {
    assert.ok(isWorkerManagerError(error), String(error));
    return error;
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

const lines = (error: WorkerManagerError): string[] =>
  (error.details?.issues as ConfigIssue[]).map((i) => `${i.position?.line}:${i.position?.col} ${i.path}: ${i.message}`);

describe('interpolateString', () => {
  const env = { A: 'alpha', N: '42', EMPTY: '' };

  it('replaces a whole-value reference and marks it whole', () => {
    assert.deepEqual(interpolateString('${A}', env), { value: 'alpha', changed: true, whole: true, names: ['A'], missing: [], invalid: [] });
  });

  it('replaces references inside a string, several to a string', () => {
    const r = interpolateString('x-${A}/${N}-y', env);
    assert.equal(r.value, 'x-alpha/42-y');
    assert.equal(r.whole, false);
    assert.deepEqual(r.names, ['A', 'N']);
  });

  it('uses the default when the variable is unset or empty, and the value when it is set', () => {
    assert.equal(interpolateString('${UNSET:-fallback}', env).value, 'fallback');
    assert.equal(interpolateString('${EMPTY:-fallback}', env).value, 'fallback');
    assert.equal(interpolateString('${A:-fallback}', env).value, 'alpha');
    assert.equal(interpolateString('${UNSET:-}', env).value, '');
    assert.equal(interpolateString('${UNSET:-a:-b ${c}', env).value, 'a:-b ${c', 'the default is literal text up to the first }');
    assert.equal(interpolateString('${UNSET:-8080}', env).whole, true);
  });

  it('gives an empty string for a variable set to the empty string', () => {
    assert.deepEqual(interpolateString('${EMPTY}', env).value, '');
    assert.deepEqual(interpolateString('${EMPTY}', env).missing, []);
  });

  it('turns $${ into a literal ${ and leaves other dollars alone', () => {
    const escaped = interpolateString('$${A} and ${A}', env);
    assert.equal(escaped.value, '${A} and alpha');
    assert.equal(interpolateString('$${A}', env).whole, false);
    assert.equal(interpolateString('cost: $5, a$$b, end$', env).value, 'cost: $5, a$$b, end$');
    assert.equal(interpolateString('cost: $5', env).changed, false);
    assert.equal(interpolateString('$$${A}', env).value, '$${A}', 'scanned left to right: "$" then the escape "$${"');
  });

  it('lists each unset variable once and never includes a value', () => {
    const r = interpolateString('${A}${MISSING_1}${MISSING_2}${MISSING_1}', env);
    assert.deepEqual(r.missing, ['MISSING_1', 'MISSING_2']);
  });

  it('rejects malformed references', () => {
    assert.deepEqual(interpolateString('${A', env).invalid, ["unterminated reference '${A': close it with '}', or write '$${' for a literal '${'"]);
    assert.deepEqual(interpolateString('${1A} ${a b} ${}', env).invalid, [
      "invalid reference '${1A}': write ${NAME} or ${NAME:-default}, NAME being letters, digits and _",
      "invalid reference '${a b}': write ${NAME} or ${NAME:-default}, NAME being letters, digits and _",
      "invalid reference '${}': write ${NAME} or ${NAME:-default}, NAME being letters, digits and _",
    ]);
    assert.deepEqual(interpolateString('${A-default}', env).invalid.length, 1, 'only :- is supported');
  });
});

describe('environment interpolation in a config file', () => {
  it('interpolates whole values, defaults, strings with several parts and escapes', async () => {
    const loaded = await loadConfig(envFixture, { env: FULL_ENV });
    const { config } = loaded;
    assert.equal(config.host.id, 'host-7');
    assert.equal(config.host.stateDir, path.join(path.dirname(envFixture), 'from-default'));
    assert.deepEqual(config.plugins[0]?.env, { TOKEN: 'tok-123', GREETING: 'hello bob, cost is $5 and ${NOT_A_VAR}' });
    assert.equal(config.instances[0]?.default, true);
  });

  it('converts a whole-value reference to a number or boolean where the host schema wants one', async () => {
    const { config, envScalars } = await loadConfig(envFixture, { env: { ...FULL_ENV, WM_TEST_DEFAULT: 'false' } });
    assert.equal(config.host.shutdownTimeoutMs, 750);
    assert.equal(config.instances[0]?.default, false);
    // The host schema does not know a plugin's config: those stay strings, to be converted with the plugin's schema.
    assert.deepEqual(config.instances[0]?.config, { maxWorkers: '12', label: '12' });
    assert.deepEqual([...envScalars].sort(), [
      '/host/id',
      '/host/shutdownTimeoutMs',
      '/host/stateDir',
      '/instances/0/config/label',
      '/instances/0/config/maxWorkers',
      '/instances/0/default',
      '/plugins/0/env/TOKEN',
    ]);
  });

  it('records the source text of every interpolated value, and shows it instead of the value', () => {
    const text = 'host:\n  stateDir: /srv/wm\nplugins:\n  - {name: a, package: "${PKG}", version: "^1.0.0 || ${V:-2}", env: {T: "$${X} ${T}", L: literal}}\n';
    const loaded = parseConfig(text, 'c.yaml', { env: { PKG: './secret-path', T: 'tok' } });
    assert.deepEqual(Object.fromEntries(loaded.fromEnv), {
      '/plugins/0/package': '${PKG}',
      '/plugins/0/version': '^1.0.0 || ${V:-2}',
      '/plugins/0/env/T': '$${X} ${T}',
    });
    assert.equal(loaded.show('/plugins/0/package', './secret-path'), '${PKG}');
    assert.equal(loaded.show('/plugins/0/env/L', 'literal'), 'literal');
    // An escape alone is not a value from the environment.
    assert.equal(parseConfig('host: {stateDir: "$${HOME}"}\n', 'c.yaml', { env: {} }).fromEnv.size, 0);
  });

  it('keeps a string a string where the schema wants a string, even when it looks like a number', () => {
    const { config } = parseConfig('host:\n  stateDir: ${DIR}\nplugins:\n  - {name: a, package: ./a, env: {PIN: "${PIN}"}}\n', 'c.yaml', {
      env: { DIR: '/tmp/1234', PIN: '0042' },
    });
    assert.equal(config.plugins[0]?.env.PIN, '0042');
    assert.equal(config.host.stateDir, '/tmp/1234');
  });

  it('never converts a reference with text around it, and says the bad value came from the environment', () => {
    const error = failure('host:\n  shutdownTimeoutMs: "${T}0"\n  logLevel: ${LEVEL}\n', { T: '5', LEVEL: 'loud' });
    assert.equal(error.code, 'HOST_ERR_CONFIG_INVALID');
    assert.deepEqual(lines(error), [
      '2:3 /host/shutdownTimeoutMs: expected integer, found string (the value comes from the environment: ${T}0)',
      '3:3 /host/logLevel: must be one of "trace", "debug", "info", "warn", "error", "silent" (the value comes from the environment: ${LEVEL})',
    ]);
  });

  it('does not convert text that is not a decimal integer, and accepts signs', () => {
    for (const bad of ['1.5', '0x10', '12abc', ' 12', '']) {
      const error = failure('host:\n  shutdownTimeoutMs: ${T}\n', { T: bad });
      assert.deepEqual(lines(error), ['2:3 /host/shutdownTimeoutMs: expected integer, found string (the value comes from the environment: ${T})'], bad);
    }
    assert.deepEqual(lines(failure('host:\n  shutdownTimeoutMs: ${T}\n', { T: '-5' })), ['2:3 /host/shutdownTimeoutMs: must be >= 0 (the value comes from the environment: ${T})']);
    assert.equal(parseConfig('host:\n  shutdownTimeoutMs: ${T}\n', 'c.yaml', { env: { T: '+15' } }).config.host.shutdownTimeoutMs, 15);
  });

  it('reports every unset variable with the file:line:col of its value, each node once', async () => {
    const error = await loadConfig(envFixture, { env: { WM_TEST_HOST_ID: 'h' } }).then(
      () => assert.fail('no error'),
      (e: unknown) => e as WorkerManagerError,
    );
    assert.equal(error.code, 'HOST_ERR_CONFIG_ENV_MISSING');
    assert.deepEqual(lines(error), [
      '4:22 /host/shutdownTimeoutMs: environment variable WM_TEST_TIMEOUT is not set and has no default (set it, or write ${WM_TEST_TIMEOUT:-default})',
      '9:14 /plugins/0/env/TOKEN: environment variable WM_TEST_TOKEN is not set and has no default (set it, or write ${WM_TEST_TOKEN:-default})',
      '10:17 /plugins/0/env/GREETING: environment variable WM_TEST_NAME is not set and has no default (set it, or write ${WM_TEST_NAME:-default})',
      '16:19 /instances/0/config/maxWorkers: environment variable WM_TEST_MAX_WORKERS is not set and has no default (set it, or write ${WM_TEST_MAX_WORKERS:-default})',
      '17:14 /instances/0/config/label: environment variable WM_TEST_MAX_WORKERS is not set and has no default (set it, or write ${WM_TEST_MAX_WORKERS:-default})',
    ]);
    const where = path.relative(process.cwd(), envFixture);
    assert.ok(error.message.includes(`${where}:9:14: /plugins/0/env/TOKEN: environment variable WM_TEST_TOKEN is not set`), error.message);
    assert.equal((error.details?.issues as ConfigIssue[])[1]?.expected, 'WM_TEST_TOKEN');
  });

  it('reports a value shared through an alias once, at the anchor', () => {
    const error = failure('plugins:\n  - {name: a, package: ./a, env: {T: &tok "${TOKEN}"}}\n  - {name: b, package: ./b, env: {T: *tok}}\n', {});
    assert.deepEqual(lines(error), ['2:43 /plugins/0/env/T: environment variable TOKEN is not set and has no default (set it, or write ${TOKEN:-default})']);
  });

  it('reports malformed references as a parse error with their position', () => {
    const error = failure('host:\n  id: ${HOST ID}\n  stateDir: "./${DIR"\n', {});
    assert.equal(error.code, 'HOST_ERR_CONFIG_PARSE');
    assert.deepEqual(lines(error), [
      "2:7 /host/id: invalid reference '${HOST ID}': write ${NAME} or ${NAME:-default}, NAME being letters, digits and _",
      "3:13 /host/stateDir: unterminated reference '${DIR': close it with '}', or write '$${' for a literal '${'",
    ]);
  });

  it('keeps an environment value that contains YAML syntax a plain string', () => {
    const hostile = 'x\nplugins: [{name: evil, package: /tmp/evil}]\n- *a\n{a: [1, 2]}: "${OTHER}" # &x !!binary';
    const { config } = parseConfig('plugins:\n  - name: a\n    package: ./a\n    env:\n      V: ${HOSTILE}\n      W: "pre ${HOSTILE} post"\n', 'c.yaml', {
      env: { HOSTILE: hostile, OTHER: 'nope' },
    });
    assert.equal(config.plugins.length, 1);
    assert.equal(config.plugins[0]?.env.V, hostile);
    assert.equal(config.plugins[0]?.env.W, `pre ${hostile} post`);
  });

  it('does not interpolate keys', () => {
    const { config } = parseConfig('instances:\n  - name: a\n    plugin: p\n    config:\n      ${KEY}: v\n', 'c.yaml', { env: { KEY: 'k' } });
    assert.deepEqual(config.instances[0]?.config, { '${KEY}': 'v' });
  });

  it('never puts the value of an environment variable in an error message or its details', async () => {
    const secret = 'hunter2-s3cr3t';
    const env = { SECRET: secret, SECRET_NUM: `${secret}9` };
    const texts = [
      'host:\n  shutdownTimeoutMs: ${SECRET}\n  logLevel: ${SECRET}\n  id: ${SECRET}\n',
      'bus:\n  adapter: ${SECRET}\n  subjectPrefix: "${SECRET} x"\n',
      'plugins:\n  - name: a\n    package: ./a\n    isolation: ${SECRET}\n    limits: {threads: "${SECRET_NUM}"}\n',
      'instances:\n  - name: ${SECRET}\n    plugin: p\n    default: ${SECRET}\n    requireCapabilities: ${SECRET}\n    config: ${SECRET}\n',
      'host:\n  id: ${SECRET}\n  stateDir: ${MISSING}\n',
      'host:\n  id: "${SECRET} ${bad ref}"\n',
    ];
    for (const text of texts) {
      const error = failure(text, env);
      assert.ok(!error.message.includes(secret), error.message);
      assert.ok(!JSON.stringify(error.details).includes(secret), JSON.stringify(error.details));
      assert.ok((error.details?.issues as ConfigIssue[]).length > 0);
    }
    const dir = path.dirname(envFixture);
    const result = await validateConfigFile(path.join(dir, 'env.yaml'), { ...FULL_ENV, WM_TEST_TIMEOUT: secret });
    assert.equal(result.ok, false);
    assert.ok(!JSON.stringify(result).includes(secret));
  });
});
