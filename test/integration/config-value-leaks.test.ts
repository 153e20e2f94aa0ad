import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { loadConfig } from '../../host/src/config/loadConfig.ts';
import { validateConfigFile } from '../../host/src/config/validateConfigFile.ts';
import { formatReport } from '../../host/src/plugins/formatReport.ts';
import { collectOutput, finished } from '../helpers/childProcess.ts';
import { fixturePlugin, repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { waitFor } from '../helpers/waitFor.ts';

// Regression: `${ENV}` values of a plugin's `package` and `version` appeared in registry errors, although
// docs/configuration.md says interpolated values never appear in errors. Every interpolated field below holds a
// canary: a unique value that must never come out of the host, in an error, a log line, an API answer or CLI output.
// Fields the host shows by design (names, host.id, host.stateDir, api.host: see docs/configuration.md) hold none.

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';

/** A unique, lower-case value, valid where a name, a path segment or a semver pre-release is expected. */
const canary = (label: string): string => `cnry${label}${randomBytes(6).toString('hex')}`;

/** Env variable -> canary it holds (the full value) and the canary itself (what must never appear). */
interface Canaries {
  env: NodeJS.ProcessEnv;
  values: Map<string, string>;
}

function plant(spec: Record<string, (c: string) => string>): Canaries {
  const env: NodeJS.ProcessEnv = { PATH };
  const values = new Map<string, string>();
  for (const [name, wrap] of Object.entries(spec)) {
    const c = canary(name.toLowerCase().replaceAll('_', ''));
    values.set(name, c);
    env[name] = wrap(c);
  }
  return { env, values };
}

/** The forms a canary could leak in: as is, base64 (a Buffer logged as JSON), hex. */
const forms = (value: string): string[] => [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex')];

/** Names of the env variables whose canary appears in `text`. */
function leaks(text: string, canaries: Canaries): string[] {
  return [...canaries.values].filter(([, value]) => forms(value).some((f) => text.includes(f))).map(([name]) => name);
}

function assertNoLeak(what: string, text: string, canaries: Canaries): void {
  assert.deepEqual(leaks(text, canaries), [], `${what} shows interpolated values:\n${text}`);
}

/** An error as everything that could print it sees it: message, JSON form (details, cause) and stack. */
function errorText(error: unknown): string {
  if (isWorkerManagerError(error)) return `${error.message}\n${JSON.stringify(error.toJSON())}\n${error.stack ?? ''}`;
  return error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
}

/** `wm config validate <file>` as a user runs it, with `env` as its environment. */
async function wmValidate(file: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'host', 'bin', 'wm.js'), 'config', 'validate', file], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = await finished(child, 'wm config validate', collectOutput(child));
  return { code: run.code, output: `${run.stdout}\n${run.stderr}` };
}

/** Valid YAML whose every interpolated field has the wrong shape: the loader refuses it with schema errors. */
const SCHEMA_ERRORS_YAML = `
host:
  logLevel: \${L_LOGLEVEL}
  shutdownTimeoutMs: \${L_SHUTDOWN}
api: { enabled: "\${L_API_ENABLED}", port: "\${L_PORT}" }
bus: { subjectPrefix: "\${L_PREFIX}" }
security:
  authentication: { mode: "\${L_MODE}", protectMetrics: "\${L_PROTECT}" }
plugins:
  - name: p
    package: \${L_PKG}
    version: "\${L_VER}"
    isolation: \${L_ISOLATION}
    env: { TOKEN: "\${L_ENV}" }
    limits: { threads: "\${L_THREADS}", heapMb: "x-\${L_HEAP}" }
instances:
  - name: i
    plugin: p
    default: \${L_DEFAULT}
    egress: ["\${L_EGRESS}"]
    requireCapabilities: ["\${L_CAP}"]
    config: { any: "\${L_CFG}" }
`;

/** Passes the schema; the egress targets do not parse (a port past 65535, a host that is not a dotted quad). */
const EGRESS_YAML = `
plugins:
  - { name: p, package: ./p }
instances:
  - { name: i, plugin: p, egress: ["\${E_PORT}", "\${E_QUAD}", "x\${E_MIXED}:443"] }
`;

/** Loads; then the registry refuses a missing package (path and npm name), a version, an instance config, a capability. */
const BOOT_YAML = `
host: { id: canary-host, stateDir: \${DIR}/state }
api: { enabled: true, port: 0 }
plugins:
  - name: missing-path
    package: \${C_PKG_PATH}
  - name: missing-npm
    package: \${C_PKG_NPM}
  - name: mismatch
    package: \${C_PKG_LINK}
    version: \${C_VER_BAD}
  - name: echo
    package: \${C_PKG_LINK2}
    version: \${C_VER_OK}
    env: { PATH: "${PATH}", SECRET: "\${C_ENV}", MIXED: "prefix-\${C_ENV_MIXED}-suffix" }
  - name: strict
    package: ${fixturePlugin('negotiation-strict-config')}
instances:
  - { name: echo-ok, plugin: echo, default: true, egress: ["\${C_EGRESS}"], config: { pendingReason: "\${C_CFG_STR}" } }
  - { name: echo-bad, plugin: echo, config: { maxWorkers: "\${C_CFG_INT}", pendingReason: "\${C_CFG_STR2}" } }
  - { name: echo-caps, plugin: echo, requireCapabilities: [worker.lifecycle, "\${C_CAP}"] }
  - { name: strict-bad, plugin: strict, config: { endpoint: "\${C_CFG_PATTERN}", retries: "\${C_CFG_RETRIES}" } }
  - { name: mm, plugin: mismatch }
  - { name: mp, plugin: missing-path }
  - { name: mn, plugin: missing-npm }
`;

const bootCanaries = (): Canaries => plant({
  C_PKG_PATH: (c) => `./no-such-${c}`,
  C_PKG_NPM: (c) => `${c}-plugin`,
  C_PKG_LINK: (c) => `./echo-${c}`,
  C_PKG_LINK2: (c) => `./echo2-${c}`,
  C_VER_BAD: (c) => `99.0.0-${c}`,
  C_VER_OK: (c) => `^1.0.0 || 0.0.1-${c}`,
  C_ENV: (c) => c,
  C_ENV_MIXED: (c) => c,
  C_EGRESS: (c) => `${c}.example:443`,
  C_CFG_STR: (c) => c,
  C_CFG_STR2: (c) => c,
  C_CFG_INT: (c) => c,
  C_CAP: (c) => `worker.${c}`,
  C_CFG_PATTERN: (c) => `ftp://${c}`,
  C_CFG_RETRIES: (c) => c,
});

/** The symlinks the boot config's `./echo-<canary>` packages point through (to the echo fixture). */
async function linkEchoPackages(dir: string, canaries: Canaries): Promise<void> {
  for (const name of ['C_PKG_LINK', 'C_PKG_LINK2']) {
    await symlink(fixturePlugin('echo'), path.join(dir, canaries.env[name] ?? assert.fail(name)));
  }
}

describe('no configuration value leaks: canary env values in every interpolated field', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-canary-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the scanner finds a canary that is there, in any form', () => {
    const c = plant({ A: (v) => v, B: (v) => `./x-${v}` });
    assert.deepEqual(leaks(`{"msg":"${c.values.get('A') ?? ''}"}`, c), ['A']);
    assert.deepEqual(leaks(`not found: ${c.env['B'] ?? ''}`, c), ['B']);
    assert.deepEqual(leaks(Buffer.from(c.values.get('B') ?? '').toString('base64'), c), ['B']);
    assert.deepEqual(leaks('nothing here', c), []);
  });

  it('schema errors: loadConfig, validateConfigFile and wm config validate name position and placeholder, never the value', async () => {
    const canaries = plant({
      L_LOGLEVEL: (c) => c, L_SHUTDOWN: (c) => c, L_API_ENABLED: (c) => c, L_PORT: (c) => c, L_PREFIX: (c) => `bad ${c}`,
      L_MODE: (c) => c, L_PROTECT: (c) => c, L_PKG: (c) => `./${c}`, L_VER: (c) => c, L_ISOLATION: (c) => c, L_ENV: (c) => c,
      L_THREADS: (c) => c, L_HEAP: (c) => c, L_DEFAULT: (c) => c, L_EGRESS: (c) => `${c} bad`, L_CAP: (c) => c, L_CFG: (c) => c,
    });
    const file = path.join(dir, 'schema-errors.yaml');
    await writeFile(file, SCHEMA_ERRORS_YAML);

    const error = await loadConfig(file, { env: canaries.env }).then(() => assert.fail('the config loaded'), (e: unknown) => e);
    assert.ok(isWorkerManagerError(error) && error.code === 'HOST_ERR_CONFIG_INVALID', errorText(error));
    assertNoLeak('the loader error', errorText(error), canaries);
    // Each refused field is named by position, pointer and the placeholder it was written with.
    assert.match(error.message, /schema-errors\.yaml:4:3: \/host\/shutdownTimeoutMs: expected integer, found string \(the value comes from the environment: \$\{L_SHUTDOWN\}\)/);
    assert.match(error.message, /schema-errors\.yaml:3:3: \/host\/logLevel: must be one of .* \(the value comes from the environment: \$\{L_LOGLEVEL\}\)/);
    assert.match(error.message, /:15:40: \/plugins\/0\/limits\/heapMb: expected integer, found string \(the value comes from the environment: x-\$\{L_HEAP\}\)/);

    const validation = await validateConfigFile(file, canaries.env);
    assert.equal(validation.ok, false);
    assertNoLeak('validateConfigFile', JSON.stringify(validation), canaries);

    const cli = await wmValidate(file, canaries.env);
    assert.equal(cli.code, 2, cli.output);
    assert.match(cli.output, /HOST_ERR_CONFIG_INVALID/);
    assert.match(cli.output, /\$\{L_PREFIX\}/);
    assertNoLeak('wm config validate', cli.output, canaries);
  });

  it('egress targets the sandbox cannot parse are refused by position and placeholder', async () => {
    const canaries = plant({ E_PORT: (c) => `${c}.example:99999`, E_QUAD: (c) => `${c}.1.2.3:80`, E_MIXED: (c) => `${c}.1` });
    const file = path.join(dir, 'egress.yaml');
    await writeFile(file, EGRESS_YAML);
    const error = await loadConfig(file, { env: canaries.env }).then(() => assert.fail('the config loaded'), (e: unknown) => e);
    assert.ok(isWorkerManagerError(error) && error.code === 'HOST_ERR_CONFIG_INVALID', errorText(error));
    assertNoLeak('the egress error', errorText(error), canaries);
    assert.match(error.message, /egress\.yaml:5:36: \/instances\/0\/egress\/0: .*\$\{E_PORT\}/);
    assert.match(error.message, /\/instances\/0\/egress\/2: .*x\$\{E_MIXED\}:443/);
    const cli = await wmValidate(file, canaries.env);
    assert.equal(cli.code, 2, cli.output);
    assertNoLeak('wm config validate', cli.output, canaries);
  });

  it('registry errors: wm config validate reports every failure without an interpolated value', async () => {
    const canaries = bootCanaries();
    const sub = await mkdtemp(path.join(dir, 'validate-'));
    const file = path.join(sub, 'wm.yaml');
    await writeFile(file, BOOT_YAML.replaceAll('${DIR}', sub));
    await linkEchoPackages(sub, canaries);
    const cli = await wmValidate(file, canaries.env);
    assert.equal(cli.code, 2, cli.output);
    for (const code of ['HOST_ERR_PLUGIN_NOT_FOUND', 'HOST_ERR_PLUGIN_VERSION_MISMATCH', 'HOST_ERR_INSTANCE_CONFIG_INVALID', 'HOST_ERR_CAPABILITY_MISSING']) {
      assert.match(cli.output, new RegExp(code), cli.output);
    }
    assertNoLeak('wm config validate', cli.output, canaries);
  });

  it('api.host from the environment: the bind errors name the placeholder, not the address', async () => {
    const octet = (): number => 1 + ((randomBytes(1)[0] ?? 0) % 250);
    // An address no interface has: listening on it fails with EADDRNOTAVAIL at once, and it is unique in any output.
    const address = `10.${octet()}.${octet()}.${octet()}`;
    const canaries: Canaries = { env: { PATH, C_API_HOST: address }, values: new Map([['C_API_HOST', address]]) };
    const boot = (security: string): Promise<unknown> =>
      startTestHost(`host: { id: canary-bind, stateDir: \${DIR}/state }\napi: { enabled: true, host: "\${C_API_HOST}", port: 0 }\n${security}`, { env: canaries.env }).then(
        async (t) => {
          await t.stop();
          assert.fail('the host started');
        },
        (e: unknown) => e,
      );
    const insecure = await boot('');
    assert.ok(isWorkerManagerError(insecure) && insecure.code === 'HOST_ERR_AUTH_INSECURE_BIND', errorText(insecure));
    assert.match(insecure.message, /api\.host \$\{C_API_HOST\} is not a loopback address/);
    assertNoLeak('the insecure bind error', errorText(insecure), canaries);
    // With OIDC a non-loopback address is allowed, and binding it fails (the issuer is never asked before a request).
    const oidc = 'security:\n  authentication:\n    mode: oidc\n    oidc: { issuer: "http://127.0.0.1:9/realms/x", audience: wm, allowInsecureHttp: true }\n';
    const unbound = await boot(oidc);
    assert.ok(isWorkerManagerError(unbound) && unbound.code === 'HOST_ERR_API_LISTEN_FAILED', errorText(unbound));
    assert.match(unbound.message, /cannot listen on \$\{C_API_HOST\}:0: EADDRNOTAVAIL/);
    assertNoLeak('the listen error', errorText(unbound), canaries);
  });

  describe('a real host booted from it', () => {
    const canaries = bootCanaries();
    let t: TestHost;
    let token: string;
    const seen: Array<{ what: string; text: string }> = [];

    before(async () => {
      t = await startTestHost(BOOT_YAML, { env: canaries.env, beforeStart: (d) => linkEchoPackages(d, canaries) });
      token = (await readFile(t.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim();
    });
    after(() => t?.stop());

    async function get(url: string): Promise<string> {
      const res = await fetch(`${t.host.apiUrl ?? assert.fail('no api')}${url}`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      seen.push({ what: `GET ${url} (${res.status})`, text });
      return text;
    }

    it('boots the healthy instance with its interpolated config and env, and fails the others with their own codes', () => {
      const state = Object.fromEntries(t.report.map((r) => [r.instance, `${r.state} ${r.error?.code ?? ''}`.trim()]));
      assert.deepEqual(state, {
        'echo-ok': 'running',
        'echo-bad': 'failed HOST_ERR_INSTANCE_CONFIG_INVALID',
        'echo-caps': 'failed HOST_ERR_CAPABILITY_MISSING',
        'strict-bad': 'failed HOST_ERR_INSTANCE_CONFIG_INVALID',
        mm: 'failed HOST_ERR_PLUGIN_VERSION_MISMATCH',
        mp: 'failed HOST_ERR_PLUGIN_NOT_FOUND',
        mn: 'failed HOST_ERR_PLUGIN_NOT_FOUND',
      });
    });

    it('names the culprit by file:line:col and placeholder', () => {
      const message = (instance: string): string => t.report.find((r) => r.instance === instance)?.error?.message ?? assert.fail(instance);
      assert.match(message('mm'), /wm\.yaml:11:5: plugin 'mismatch': config accepts \$\{C_VER_BAD\}, installed @fixtures\/echo is 1\.0\.0/);
      assert.match(message('mp'), /wm\.yaml:6:5: plugin 'missing-path': no package found at \$\{C_PKG_PATH\}/);
      assert.match(message('mn'), /wm\.yaml:8:5: plugin 'missing-npm': no package found at \$\{C_PKG_NPM\}/);
      assert.match(message('echo-caps'), /wm\.yaml:\d+:\d+: instance 'echo-caps' requires \$\{C_CAP\}/);
      assert.match(message('echo-bad'), /\/instances\/1\/config\/maxWorkers: expected integer, found string \(the value comes from the environment: \$\{C_CFG_INT\}\)/);
      assert.match(message('strict-bad'), /\/instances\/3\/config\/endpoint: must match \^https\?:\/\/ \(the value comes from the environment: \$\{C_CFG_PATTERN\}\)/);
    });

    it('shows no interpolated value in the startup report, the registry errors, the API or the logs', async () => {
      // The healthy instance works (so its config and env reached the plugin) before anything is scanned.
      const created = await t.host.workers.createWorker({ workerId: 'w-canary', spec: { command: ['true'] } });
      assert.equal(created.instance, 'echo-ok');
      await get('/v1/plugins');
      for (const name of ['missing-path', 'missing-npm', 'mismatch', 'echo', 'strict']) await get(`/v1/plugins/${name}`);
      await get('/v1/providers');
      await get('/readyz');
      await get('/metrics');
      for (const provider of ['mm', 'mp', 'echo-bad', 'echo-caps']) await get(`/v1/capacity?provider=${provider}`);
      await waitFor(() => t.logs.some((l) => l.includes('host started')), 'the host started line');

      assertNoLeak('the startup report', formatReport(t.report), canaries);
      assertNoLeak('the report rows', JSON.stringify(t.report), canaries);
      for (const p of t.host.registry.plugins()) if (p.error !== undefined) assertNoLeak(`plugin ${p.name}'s error`, errorText(p.error), canaries);
      for (const i of t.host.registry.instances()) if (i.error !== undefined) assertNoLeak(`instance ${i.name}'s error`, errorText(i.error), canaries);
      for (const { what, text } of seen) assertNoLeak(what, text, canaries);
      assertNoLeak('the events', JSON.stringify(t.events), canaries);
      assertNoLeak('the host log', t.logs.join('\n'), canaries);
    });
  });
});
