import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isWorkerManagerError, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ConfigIssue } from '../../../host/src/config/formatIssues.ts';
import { loadConfig, parseConfig } from '../../../host/src/config/loadConfig.ts';
import { budget } from '../../helpers/waitFor.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/config/', import.meta.url));
const fixture = (name: string): string => path.join(fixtures, name);

/** Runs `fn`, expects a WorkerManagerError with `code`, returns it. */
async function rejection(fn: () => unknown, code: string): Promise<WorkerManagerError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(isWorkerManagerError(error), `expected a WorkerManagerError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but nothing was thrown`);
}

/** Parses text that must fail; returns the error code and its issue summary. */
function parseFailure(text: string): { code: string; lines: string[] } {
  try {
    parseConfig(text, 'c.yaml', { env: {} });
  } catch (error) {
    assert.ok(isWorkerManagerError(error), String(error));
    return { code: error.code, lines: summary(error) };
  }
  assert.fail(`no error for ${JSON.stringify(text)}`);
}

/** `line:col pointer: message` for each issue: compact enough to assert a whole list exactly. */
function summary(error: WorkerManagerError): string[] {
  const issues = error.details?.issues as ConfigIssue[];
  return issues.map((i) => `${i.position?.line}:${i.position?.col} ${i.path}: ${i.message}`);
}

const DEFAULT_LIMITS = {
  threads: 1,
  concurrentCallsPerThread: 16,
  heapMb: 256,
  callTimeoutMs: 30_000,
  startTimeoutMs: 60_000,
  heartbeatMs: 1_000,
  hangTimeoutMs: 10_000,
  restart: { maxRestarts: 5, windowMs: 60_000, backoffMs: 100, maxBackoffMs: 5_000 },
};

describe('loadConfig', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'wm-config-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('loads a minimal config and fills in every default', async () => {
    const loaded = await loadConfig(fixture('minimal.yaml'), { env: {} });
    assert.equal(loaded.file, fixture('minimal.yaml'));
    assert.equal(loaded.dir, path.dirname(fixture('minimal.yaml')));
    assert.deepEqual(loaded.config, {
      host: { stateDir: path.join(fixtures, '.wm-state'), shutdownTimeoutMs: 10_000, logLevel: 'info', onShutdown: 'leave-running', drainTimeoutMs: 300_000, workerStartTimeoutMs: 600_000 },
      bus: { adapter: 'memory', subjectPrefix: 'ci' },
      api: { enabled: false, host: '127.0.0.1', port: 8080, bodyLimitBytes: 1_048_576 },
      plugins: [
        {
          name: 'process',
          package: '../../../plugins/process',
          version: '*',
          isolation: 'auto',
          onBootFailure: 'continue',
          env: {},
          limits: DEFAULT_LIMITS,
        },
      ],
      instances: [{ name: 'local', plugin: 'process', default: false, requireCapabilities: [], config: {}, orphans: 'adopt', egress: [] }],
      secrets: {
        cacheTtlMs: 5_000,
        tenants: [],
        rotation: { debounceMs: 1_000, defaultGracePeriodMs: 300_000, historyLimit: 500, maxParallel: 2, policies: [] },
      },
      security: {
        authentication: { mode: 'local', serviceIdentity: { commands: false, roles: [] } },
        authorization: { adapter: 'cedar', cedar: { schemaFile: 'schema.cedarschema' } },
        audit: { key: { generate: false }, previousKeys: [], anchor: { bus: true, everyRecords: 1, everyMs: 1_000 } },
      },
      ledger: { file: 'ledger/workers.db', retentionMs: 86_400_000, idempotencyTtlMs: 86_400_000, pollIntervalMs: 2_000, reconcileIntervalMs: 30_000, purgeIntervalMs: 60_000 },
      observability: { secretNameLabels: false },
    });
  });

  it('keeps every value of a full config', async () => {
    const { config } = await loadConfig(fixture('full.yaml'), { env: {} });
    assert.deepEqual(config.host, {
      id: 'ci-host-1', stateDir: path.join(fixtures, 'state'), shutdownTimeoutMs: 2_500, logLevel: 'debug', onShutdown: 'drain', drainTimeoutMs: 60_000, workerStartTimeoutMs: 900_000,
    });
    assert.deepEqual(config.bus, { adapter: 'memory', subjectPrefix: 'acme.ci' });
    assert.deepEqual(config.plugins[0], {
      name: 'process',
      package: '../../../plugins/process',
      version: '^0.1.0',
      isolation: 'trusted',
      onBootFailure: 'abort',
      env: { PATH: '/usr/bin:/bin' },
      limits: {
        threads: 2,
        concurrentCallsPerThread: 8,
        heapMb: 128,
        callTimeoutMs: 5_000,
        startTimeoutMs: 60_000,
        heartbeatMs: 500,
        hangTimeoutMs: 4_000,
        restart: { maxRestarts: 3, windowMs: 30_000, backoffMs: 50, maxBackoffMs: 1_000 },
      },
    });
    assert.deepEqual(config.instances, [
      {
        name: 'fast',
        plugin: 'process',
        default: true,
        requireCapabilities: ['worker.exec', 'worker.logs'],
        config: { maxWorkers: 8, passEnv: ['PATH', 'HOME'] },
        orphans: 'adopt',
        egress: [],
        workerStartTimeoutMs: 1_800_000,
      },
    ]);
  });

  it('gives each entry its own copy of a default, so changing one leaves the others alone', () => {
    const { config } = parseConfig('plugins:\n  - {name: a, package: ./a}\n  - {name: b, package: ./b}\n', path.join(tmp, 'c.yaml'), { env: {} });
    assert.notEqual(config.plugins[0]?.limits, config.plugins[1]?.limits);
    assert.notEqual(config.plugins[0]?.env, config.plugins[1]?.env);
  });

  it('resolves a relative host.stateDir against the folder of the config file and keeps an absolute one', async () => {
    const nested = path.join(tmp, 'a', 'b');
    await mkdir(nested, { recursive: true });
    await writeFile(path.join(nested, 'wm.yaml'), 'host:\n  stateDir: ../state\n');
    assert.equal((await loadConfig(path.join(nested, 'wm.yaml'), { env: {} })).config.host.stateDir, path.join(tmp, 'a', 'state'));
    const absolute = path.join(tmp, 'elsewhere');
    assert.equal(parseConfig(`host:\n  stateDir: ${absolute}\n`, path.join(nested, 'wm.yaml'), { env: {} }).config.host.stateDir, absolute);
  });

  it('treats an empty file, or one with only comments, as an empty config', async () => {
    await writeFile(path.join(tmp, 'empty.yaml'), '');
    const empty = await loadConfig(path.join(tmp, 'empty.yaml'), { env: {} });
    assert.deepEqual(empty.config.plugins, []);
    assert.deepEqual(empty.config.instances, []);
    assert.equal(empty.config.host.logLevel, 'info');
    assert.deepEqual(parseConfig('# nothing here yet\n', path.join(tmp, 'c.yaml'), { env: {} }).config.bus, { adapter: 'memory', subjectPrefix: 'ci' });
  });

  it('fails with HOST_ERR_CONFIG_NOT_FOUND naming the path of a missing file', async () => {
    const missing = path.join(tmp, 'nope', 'wm.yaml');
    const error = await rejection(() => loadConfig(missing), 'HOST_ERR_CONFIG_NOT_FOUND');
    assert.ok(error.message.includes(missing), error.message);
    assert.match(error.message, /does not exist/);
    assert.equal(error.details?.file, missing);
  });

  it('fails with HOST_ERR_CONFIG_NOT_FOUND when the path cannot be read as a file', async () => {
    const error = await rejection(() => loadConfig(tmp), 'HOST_ERR_CONFIG_NOT_FOUND');
    assert.ok(error.message.includes(tmp), error.message);
    assert.match(error.message, /cannot be read \(EISDIR\)/);
  });

  it('reports every YAML syntax error with file:line:col and the parser reason', async () => {
    const error = await rejection(() => loadConfig(fixture('syntax-error.yaml'), { env: {} }), 'HOST_ERR_CONFIG_PARSE');
    assert.deepEqual(summary(error), [
      '2:13 : Nested mappings are not allowed in compact mappings',
      '2:13 : Implicit keys need to be on a single line',
      '7:1 : Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    const where = path.relative(process.cwd(), fixture('syntax-error.yaml'));
    assert.ok(error.message.includes(`${where}:2:13: Nested mappings are not allowed in compact mappings`), error.message);
    assert.ok(error.message.includes(`${where}:7:1: Flow sequence`), error.message);
    assert.equal((error.details?.issues as ConfigIssue[])[0]?.position?.file, fixture('syntax-error.yaml'));
  });

  it('rejects a duplicate key at the position of the second one', async () => {
    const error = await rejection(() => loadConfig(fixture('duplicate-key.yaml'), { env: {} }), 'HOST_ERR_CONFIG_PARSE');
    assert.deepEqual(summary(error), ['4:3 : Map keys must be unique']);
  });

  it('rejects keys that only differ in YAML type (1 and "1") as duplicates too', () => {
    assert.deepEqual(parseFailure('instances:\n  - name: a\n    plugin: p\n    config:\n      1: x\n      "1": y\n'), {
      code: 'HOST_ERR_CONFIG_PARSE',
      lines: ["6:7 /instances/0/config/1: duplicate key '1'"],
    });
  });

  it('rejects a second YAML document, unknown tags, complex keys and a recursive alias', () => {
    const cases: Array<[string, string]> = [
      ['host: {}\n---\nbus: {}\n', '2:1 : Source contains multiple documents; please use YAML.parseAllDocuments()'],
      ['host:\n  id: !secret abc\n', '2:7 : Unresolved tag: !secret'],
      ['host:\n  id: !!binary aGVsbG8=\n', '2:16 /host/id: unsupported YAML tag tag:yaml.org,2002:binary'],
      ['instances:\n  - config:\n      ? [a, b]\n      : 1\n', '3:9 /instances/0/config: mapping keys must be plain strings'],
      ['instances:\n  - &loop\n    config:\n      self: *loop\n', '4:13 /instances/0/config/self: alias *loop refers to a node that contains it'],
    ];
    for (const [text, expected] of cases) {
      assert.deepEqual(parseFailure(text), { code: 'HOST_ERR_CONFIG_PARSE', lines: [expected] }, text);
    }
  });

  it('stops an alias bomb quickly instead of expanding it', () => {
    const levels = ['a: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) levels.push(`b${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const text = `instances:\n  - name: bomb\n    plugin: p\n    config:\n${levels.map((l) => `      ${l}`).join('\n')}\n`;
    const started = performance.now();
    assert.deepEqual(parseFailure(text), { code: 'HOST_ERR_CONFIG_PARSE', lines: ['1:1 : too many nodes after expanding aliases (more than 100000)'] });
    // Stopping at the node limit takes milliseconds; expanding the billion nodes would take minutes (or the heap).
    const took = performance.now() - started;
    assert.ok(took < budget(20_000), `took ${Math.round(took)} ms`);
  });

  it('keeps a __proto__ key as data and never touches Object.prototype', () => {
    const { config } = parseConfig('instances:\n  - name: a\n    plugin: p\n    config:\n      __proto__: { polluted: true }\n', 'c.yaml', { env: {} });
    const instanceConfig = config.instances[0]?.config as Record<string, unknown>;
    assert.ok(Object.hasOwn(instanceConfig, '__proto__'));
    assert.deepEqual(Object.getPrototypeOf(instanceConfig), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('reports every schema problem at once, each at its line:col, in file order', async () => {
    const error = await rejection(() => loadConfig(fixture('invalid.yaml'), { env: {} }), 'HOST_ERR_CONFIG_INVALID');
    assert.deepEqual(summary(error), [
      '2:3 /host/logLevel: must be one of "trace", "debug", "info", "warn", "error", "silent"',
      '3:3 /host/shutdownTimeoutMs: expected integer, found string',
      "4:3 /host/colour: unknown field 'colour' (allowed: id, stateDir, shutdownTimeoutMs, logLevel, onShutdown, drainTimeoutMs, workerStartTimeoutMs)",
      "6:5 /plugins/0: missing required field 'package'",
      '7:5 /plugins/0/isolation: must be one of "trusted", "restricted", "auto"',
      '9:7 /plugins/0/limits/threads: must be >= 1',
      "11:9 /plugins/0/limits/restart/maxRestart: unknown field 'maxRestart' (allowed: maxRestarts, windowMs, backoffMs, maxBackoffMs)",
      '15:5 /instances/0/default: expected boolean, found string',
      "18:5 /instances/1: missing required field 'name'",
    ]);
    const where = path.relative(process.cwd(), fixture('invalid.yaml'));
    assert.match(error.message, /invalid \(9 problems\)/);
    assert.ok(error.message.includes(`${where}:9:7: /plugins/0/limits/threads: must be >= 1`), error.message);
    assert.ok(error.message.includes(`${where}:18:5: /instances/1: missing required field 'name'`), error.message);
    const issues = error.details?.issues as ConfigIssue[];
    assert.equal(issues.find((i) => i.path === '/plugins/0/isolation')?.expected, '"trusted" | "restricted" | "auto"');
    assert.equal(issues.find((i) => i.path === '/host/shutdownTimeoutMs')?.expected, 'integer');
    assert.equal(issues.find((i) => i.path === '/instances/1')?.expected, 'name');
  });

  it('reports problems in flow style, in nested instance fields and in the env map', () => {
    const text = [
      'plugins:',
      '  - {name: Proc, package: "", env: {1PATH: x, HOME: 7}}',
      'instances:',
      '  - name: a',
      '    plugin: proc',
      '    requireCapabilities: [worker.exec, ""]',
      '    config: [1, 2]',
      'bus: {adapter: nats, subjectPrefix: "a..b"}',
      'extra: true',
    ].join('\n');
    assert.deepEqual(parseFailure(text), {
      code: 'HOST_ERR_CONFIG_INVALID',
      lines: [
        '2:6 /plugins/0/name: must match ^[a-z][a-z0-9-]{0,62}$',
        '2:18 /plugins/0/package: must not be empty',
        "2:37 /plugins/0/env/1PATH: key '1PATH' is not allowed: keys must match ^[A-Za-z_][A-Za-z0-9_]*$",
        '2:47 /plugins/0/env/HOME: expected string, found integer',
        '6:40 /instances/0/requireCapabilities/1: must not be empty',
        '7:5 /instances/0/config: expected object, found array',
        '8:7 /bus/adapter: must be one of "memory", "jetstream"',
        '8:22 /bus/subjectPrefix: must match ^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
        "9:1 /extra: unknown field 'extra' (allowed: host, bus, api, secrets, security, ledger, observability, plugins, instances)",
      ],
    });
  });

  it('reports the worker lifecycle settings (host.onShutdown, drainTimeoutMs, start timeouts) at their line:col', () => {
    const text = [
      'host:',
      '  onShutdown: stop',
      '  drainTimeoutMs: -1',
      '  workerStartTimeoutMs: 10',
      'instances:',
      '  - { name: a, plugin: p, workerStartTimeoutMs: "long" }',
    ].join('\n');
    assert.deepEqual(parseFailure(text), {
      code: 'HOST_ERR_CONFIG_INVALID',
      lines: [
        '2:3 /host/onShutdown: must be one of "leave-running", "drain", "terminate"',
        '3:3 /host/drainTimeoutMs: must be >= 0',
        '4:3 /host/workerStartTimeoutMs: must be >= 1000',
        '6:27 /instances/0/workerStartTimeoutMs: expected integer, found string',
      ],
    });
  });

  it('reports a document that is not a mapping at the top of the file', () => {
    assert.deepEqual(parseFailure('# comment\n- a\n- b\n'), { code: 'HOST_ERR_CONFIG_INVALID', lines: ['2:1 : expected object, found array'] });
  });

  it('locates nested pointers, array indexes, escaped keys and the deepest existing node of a missing path', () => {
    const text = [
      '# leading comment',
      'host:',
      '  logLevel: info',
      'plugins:',
      '  - name: a',
      '    package: ./a',
      '    limits:',
      '      threads: 2',
      '  - {name: b, package: ./b}',
      'instances:',
      '  - name: i',
      '    plugin: a',
      '    config:',
      '      maxWorkers: 4',
      '      "a/b~c": 1',
      '      list: [x, {deep: y}]',
    ].join('\n');
    const { locate, file } = parseConfig(text, 'dir/c.yaml', { env: {} });
    assert.equal(file, path.resolve('dir/c.yaml'));
    const at = (pointer: string): string | undefined => {
      const p = locate(pointer);
      return p === undefined ? undefined : `${p.line}:${p.col}`;
    };
    assert.deepEqual(locate('/host/logLevel'), { file, line: 3, col: 3 });
    assert.equal(at(''), '2:1');
    assert.equal(at('/host'), '2:1');
    assert.equal(at('/plugins'), '4:1');
    assert.equal(at('/plugins/0'), '5:5');
    assert.equal(at('/plugins/0/limits/threads'), '8:7');
    assert.equal(at('/plugins/1'), '9:5');
    assert.equal(at('/plugins/1/package'), '9:15');
    assert.equal(at('/instances/0/config/maxWorkers'), '14:7');
    assert.equal(at('/instances/0/config/a~1b~0c'), '15:7');
    assert.equal(at('/instances/0/config/list/1'), '16:17');
    assert.equal(at('/instances/0/config/list/1/deep'), '16:18');
    // Paths that do not exist fall back to the deepest node that does.
    assert.equal(at('/instances/0/config/missing/deeper'), '13:5');
    assert.equal(at('/plugins/7/name'), '4:1');
    assert.equal(at('/bus/adapter'), '2:1');
    assert.equal(locate('not-a-pointer'), undefined);
  });

  it('locates nodes reached through an alias, and validates each use of it', () => {
    const text = [
      'plugins:',
      '  - name: a',
      '    package: ./a',
      '    limits: &small',
      '      threads: 0',
      '  - name: b',
      '    package: ./b',
      '    limits: *small',
    ].join('\n');
    assert.deepEqual(parseFailure(text), {
      code: 'HOST_ERR_CONFIG_INVALID',
      lines: ['5:7 /plugins/0/limits/threads: must be >= 1', '5:7 /plugins/1/limits/threads: must be >= 1'],
    });
  });
});
