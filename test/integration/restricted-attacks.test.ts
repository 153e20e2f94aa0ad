import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { constants, existsSync, readFileSync } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { isPluginDefinition, pluginMetadataOf, type ExecutionResult } from '@worker-manager/plugin-sdk';
import { fixturePlugin, repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, within } from '../helpers/waitFor.ts';

// Regression suite of escapes from the restricted tier. Every attack of the `attacker` fixture runs in one instance
// of it, through a real host (real registry and sandbox, API on a real port); for each one the suite asserts that it
// failed, that the host still answers GET /healthz over HTTP within a second, and that a healthy echo instance beside
// the attacker still answers a call.
//
// The suite proves itself: `WM_ATTACKS_TIER=trusted` runs the same attacker in a trusted (in-process, unconfined)
// instance, where the attacks that such a plugin can do must SUCCEED, so each "it failed" below is a real check of
// working attack code. The default is `restricted`.
//
// Host-side facts an attack needs come from the host itself: the API's port from `host.apiUrl` (`api.port: 0`), the
// admin token's path from `host.adminTokenFile` (`<stateDir>/admin.token`, mode local), the credentials key file from
// the `vault` instance's config. Environment markers: `WM_ATTACK_MARKER=<random>` is set in the host's environment
// while it runs (seen by anything that reads the live environment, like a diagnostic report), and, because
// /proc/<pid>/environ only shows a process's environment as it was at exec, one entry of the host's own start-up
// environment too.

type Tier = 'trusted' | 'restricted';

function tierFrom(raw: string | undefined): Tier {
  if (raw === undefined || raw === '') return 'restricted';
  if (raw === 'trusted' || raw === 'restricted') return raw;
  throw new Error(`WM_ATTACKS_TIER must be 'trusted' or 'restricted', got '${raw}'`);
}

const TIER = tierFrom(process.env['WM_ATTACKS_TIER']);
const RESTRICTED = TIER === 'restricted';

/** The requirement: the host answers /healthz within a second while an instance is under attack. */
const HEALTHZ_MS = budget(1_000);
/** Longer than the fixture's own deadline per attack (5 s): only a sandbox that stopped answering reaches it. */
const ATTACK_CALL_MS = 30_000;

/** Names a sandbox may set on its own: their values say nothing about whose environment was read. */
const COMMON_ENV = new Set(['PATH', 'HOME', 'PWD', 'OLDPWD', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'TERM', 'SHLVL', 'USER', 'LOGNAME', 'SHELL', '_', 'NODE_OPTIONS']);

/**
 * A `NAME=value` entry of this process's environment as it was at exec (what /proc/<pid>/environ shows): the longest
 * one whose name a sandbox would not set itself. The host runs in this process.
 */
function startupEnvEntry(): string | undefined {
  const entries = readFileSync('/proc/self/environ', 'utf8').split('\0');
  const candidates = entries.filter((e) => e.includes('=') && !COMMON_ENV.has(e.slice(0, e.indexOf('='))) && !e.startsWith('LC_') && e.length > 8);
  return candidates.sort((a, b) => b.length - a.length)[0];
}

/** A shared library that exists on this machine (loaded by dlopen, never called). */
function sharedLibrary(): string {
  const candidates = ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/aarch64-linux-gnu/libc.so.6', '/lib/aarch64-linux-gnu/libc.so.6', '/lib64/libc.so.6', '/usr/lib64/libc.so.6'];
  const found = candidates.find((f) => existsSync(f));
  if (found === undefined) throw new Error(`none of ${candidates.join(', ')} exists: the dlopen attack needs a libc to load`);
  return found;
}

/** Whether this (unconfined) process can connect: decides what a trusted plugin can be expected to do. */
async function canConnect(target: { host: string; port: number } | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(target);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, budget(2_000));
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

const canRead = (file: string): Promise<boolean> => access(file, constants.R_OK).then(
  () => true,
  () => false,
);
const fileExists = (file: string): Promise<boolean> => access(file).then(
  () => true,
  () => false,
);

/**
 * One line about an attack's answer. What a `read` got (a token, a key, /etc/shadow) is only counted, never printed:
 * test output ends up in CI logs. The fixture already prints /proc/<pid>/environ entries by name only.
 */
const describeResult = (name: string, r: ExecutionResult): string => {
  const hidden = name.startsWith('read ') && !name.endsWith('environ');
  const stdout = hidden ? `${r.stdout.length} chars (not shown)` : JSON.stringify(r.stdout.slice(0, 300));
  return `exitCode ${r.exitCode}, stdout ${stdout}, stderr ${JSON.stringify(r.stderr)}`;
};

/**
 * What a trusted instance must do with an attack: `succeed` (the proof that the attack code works), or nothing asked
 * when it depends on the machine or a trusted plugin cannot do it either.
 */
type TrustedExpectation = 'succeeds' | 'either';

/** The tier's verdict on one attack: failed when restricted, succeeded (when expected) when trusted. */
function assertOutcome(t: TestContext, name: string, result: ExecutionResult, trusted: TrustedExpectation): void {
  t.diagnostic(`${name}: ${describeResult(name, result)}`);
  assert.notEqual(result.exitCode, 2, `the fixture has no attack '${name}'`);
  if (RESTRICTED) {
    assert.equal(result.exitCode, 1, `attack '${name}' succeeded against a restricted instance: ${describeResult(name, result)}`);
  } else if (trusted === 'succeeds') {
    assert.equal(result.exitCode, 0, `attack '${name}' failed in a trusted instance, so its restricted check proves nothing: ${describeResult(name, result)}`);
  }
}

describe(`attacks on a ${TIER} instance (WM_ATTACKS_TIER=${TIER})`, { timeout: budget(600_000) }, () => {
  let h: TestHost;
  let apiUrl: string;
  let outside: string;
  let tcpServer: net.Server;
  let tcpPort: number;
  /** A loopback port the `attacker-allowed` instance may reach: an allowance that has nothing to do with what it attacks. */
  let unrelatedServer: net.Server;
  let unrelatedPort: number;
  let keyFile: string;
  const marker = `wm-attack-${randomUUID()}`;
  const startupEntry = startupEnvEntry();
  /** What proves that an environment was the host's: the live marker, and an entry of its start-up environment. */
  const envMarkers = [marker, ...(startupEntry === undefined ? [] : [startupEntry])];
  let probes = 0;

  before(async () => {
    process.env['WM_ATTACK_MARKER'] = marker;
    outside = await mkdtemp(path.join(os.tmpdir(), 'wm-attack-outside-'));
    // A loopback service that is not the host's (it stands for a local NATS server, a database, a metadata endpoint).
    tcpServer = net.createServer((socket) => {
      // The attacker hangs up at once: a reset is its doing, not the service's failure.
      socket.on('error', () => {});
      socket.end('hello from a loopback service\n');
    });
    await new Promise<void>((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
    tcpPort = (tcpServer.address() as net.AddressInfo).port;
    unrelatedServer = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => unrelatedServer.listen(0, '127.0.0.1', resolve));
    unrelatedPort = (unrelatedServer.address() as net.AddressInfo).port;
    h = await startTestHost(
      `
host: { id: h-attacks, stateDir: \${DIR}/state }
api: { enabled: true, port: 0 }
plugins:
  - name: attacker
    package: ${fixturePlugin('attacker')}
    isolation: ${TIER}
  - name: echo
    package: ${fixturePlugin('echo')}
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
instances:
  - { name: attacker, plugin: attacker }
  - { name: attacker-allowed, plugin: attacker, egress: ['127.0.0.1:${unrelatedPort}'] }
  - { name: healthy, plugin: echo, default: true }
  - { name: vault, plugin: credentials-simple, config: { keyFile: \${DIR}/vault.key, scrypt: { cost: 1024 } } }
`,
      {
        beforeStart: async (dir) => {
          keyFile = path.join(dir, 'vault.key');
          await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
        },
      },
    );
    const notRunning = h.report.filter((r) => r.state !== 'running');
    assert.deepEqual(notRunning, [], 'every instance runs');
    assert.equal(h.report.find((r) => r.instance === 'attacker')?.isolation, TIER);
    apiUrl = h.host.apiUrl ?? assert.fail('the API is not listening');
    // The echo provider keeps workers in memory only: this creates nothing outside the test.
    await h.host.registry.provider('healthy').createWorker({ workerId: 'probe', spec: {} });
  });

  after(async () => {
    delete process.env['WM_ATTACK_MARKER'];
    try {
      await h?.stop();
    } finally {
      await new Promise((resolve) => tcpServer?.close(resolve));
      await new Promise((resolve) => unrelatedServer?.close(resolve));
      if (outside !== undefined) await rm(outside, { recursive: true, force: true });
    }
  });

  /** Runs one attack in the attacker instance; never waits longer than a budget. */
  const attack = (...command: string[]): Promise<ExecutionResult> => attackFrom('attacker', ...command);
  const attackFrom = (instance: string, ...command: string[]): Promise<ExecutionResult> =>
    within(
      h.host.registry.provider(instance).executeCommand({ workerId: 'w', command }, { timeoutMs: budget(ATTACK_CALL_MS) }),
      `the attacker's answer to '${command.join(' ')}'`,
      ATTACK_CALL_MS + 10_000,
    );

  /** The host answers GET /healthz over real HTTP within a second. */
  async function assertHealthz(): Promise<void> {
    const started = performance.now();
    const res = await fetch(`${apiUrl}/healthz`, { signal: AbortSignal.timeout(budget(10_000)) });
    const body: unknown = await res.json();
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body, { status: 'ok' });
    assert.ok(elapsed <= HEALTHZ_MS, `GET /healthz took ${elapsed.toFixed(0)} ms (at most ${HEALTHZ_MS} ms allowed)`);
  }

  /** /healthz answers within a second, and the echo instance beside the attacker answers a call. */
  async function assertHostHealthy(): Promise<void> {
    await assertHealthz();
    const n = ++probes;
    const echo = await within(h.host.registry.provider('healthy').executeCommand({ workerId: 'probe', command: ['ping', String(n)] }), 'the healthy echo instance to answer', 20_000);
    assert.equal(echo.stdout, `ping ${n}`);
  }

  it('the attacker fixture declares in package.json what its definition says', async () => {
    const dir = fixturePlugin('attacker');
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { version: string; workerManager: unknown };
    const def: unknown = (await import(path.join(dir, 'index.ts'))).default;
    assert.ok(isPluginDefinition(def));
    assert.equal(pkg.version, def.version);
    assert.deepEqual(pkg.workerManager, pluginMetadataOf(def));
  });

  it('inspector: node:inspector open() hands out no debugger URL', async (t) => {
    assertOutcome(t, 'inspector', await attack('inspector'), 'succeeds');
    await assertHostHealthy();
  });

  it('sigusr1: SIGUSR1 opens no inspector on 127.0.0.1:9229', async (t) => {
    assert.equal(await canConnect({ host: '127.0.0.1', port: 9229 }), false, 'something already listens on 127.0.0.1:9229: the attack cannot be judged');
    t.after(async () => {
      // Wherever the signal landed, the host process (this one) must not keep a debugger port open.
      const inspector = await import('node:inspector');
      if (inspector.url() !== undefined) inspector.close();
    });
    assertOutcome(t, 'sigusr1', await attack('sigusr1'), 'succeeds');
    await assertHostHealthy();
  });

  it('kill-pid: signal 0 cannot reach the host process', async (t) => {
    assertOutcome(t, 'kill-pid', await attack('kill-pid', String(process.pid)), 'succeeds');
    await assertHostHealthy();
  });

  it('report-env: a diagnostic report does not show the host environment', async (t) => {
    const result = await attack('report-env', marker);
    assertOutcome(t, 'report-env', result, 'succeeds');
    await assertHostHealthy();
  });

  it('env: process.env holds nothing of the host environment', async (t) => {
    const result = await attack('env', marker);
    assertOutcome(t, 'env', result, 'either');
    assert.ok(!result.stdout.includes(marker), 'the host marker is in the plugin\'s process.env');
    if (!RESTRICTED) {
      // Even a trusted thread only gets its granted env; the answer must still be the JSON of one.
      assert.equal(typeof JSON.parse(result.stdout), 'object', describeResult('env', result));
    }
    await assertHostHealthy();
  });

  it('read /proc/self/environ: shows no host environment', async (t) => {
    assert.ok(startupEntry !== undefined, 'this process\'s start-up environment holds no entry a sandbox would not set: /proc/*/environ attacks cannot be judged');
    assertOutcome(t, 'read /proc/self/environ', await attack('read', '/proc/self/environ', ...envMarkers), 'succeeds');
    await assertHostHealthy();
  });

  it('read /proc/<host pid>/environ: shows no host environment', async (t) => {
    assertOutcome(t, 'read /proc/<host pid>/environ', await attack('read', `/proc/${process.pid}/environ`, ...envMarkers), 'succeeds');
    await assertHostHealthy();
  });

  it('read /proc/1/environ: shows no host environment', async (t) => {
    // Whether PID 1 of this machine carries the host's environment depends on the machine; in a sandbox, PID 1 is
    // the sandbox's own init, which must not have been started with the host's environment either.
    assertOutcome(t, 'read /proc/1/environ', await attack('read', '/proc/1/environ', ...envMarkers), 'either');
    await assertHostHealthy();
  });

  it('read the admin token: the host\'s <stateDir>/admin.token is out of reach', async (t) => {
    const tokenFile = h.host.adminTokenFile ?? assert.fail('the host writes no local admin token');
    const token = (await readFile(tokenFile, 'utf8')).trim();
    const result = await attack('read', tokenFile);
    assertOutcome(t, 'read admin token', result, 'succeeds');
    if (RESTRICTED) assert.ok(!result.stdout.includes(token), 'the admin token leaked into the answer');
    else assert.equal(result.stdout.trim(), token);
    await assertHostHealthy();
  });

  it('read the credentials key file of another instance: out of reach', async (t) => {
    const key = (await readFile(keyFile, 'utf8')).trim();
    const result = await attack('read', keyFile);
    assertOutcome(t, 'read credentials key', result, 'succeeds');
    if (RESTRICTED) assert.ok(!result.stdout.includes(key), 'the key material leaked into the answer');
    await assertHostHealthy();
  });

  it('read /etc/shadow: out of reach', async (t) => {
    const readable = await canRead('/etc/shadow');
    assertOutcome(t, 'read /etc/shadow', await attack('read', '/etc/shadow'), readable ? 'succeeds' : 'either');
    await assertHostHealthy();
  });

  it('connect-unix /var/run/docker.sock: the Docker API is out of reach', async (t) => {
    const reachable = await canConnect({ path: '/var/run/docker.sock' });
    if (!reachable) t.diagnostic('no Docker daemon answers on /var/run/docker.sock here: the trusted run cannot prove this attack');
    assertOutcome(t, 'connect-unix docker.sock', await attack('connect-unix', '/var/run/docker.sock'), reachable ? 'succeeds' : 'either');
    await assertHostHealthy();
  });

  it('write outside: a file in a folder of the host\'s temp dir is not created', async (t) => {
    const target = path.join(outside, 'attacker-was-here.txt');
    const result = await attack('write', target);
    assertOutcome(t, 'write outside', result, 'succeeds');
    assert.equal(await fileExists(target), !RESTRICTED, `the host sees ${RESTRICTED ? 'a' : 'no'} file at ${target}`);
    await rm(target, { force: true });
    await assertHostHealthy();
  });

  it('write into the host\'s state dir: no file appears next to its ledger and token', async (t) => {
    const target = path.join(h.dir, 'state', 'attacker-was-here.txt');
    const result = await attack('write', target);
    assertOutcome(t, 'write state dir', result, 'succeeds');
    assert.equal(await fileExists(target), !RESTRICTED, `the host sees ${RESTRICTED ? 'a' : 'no'} file at ${target}`);
    await rm(target, { force: true });
    await assertHostHealthy();
  });

  it('dlopen: no shared library is loaded', async (t) => {
    assertOutcome(t, 'dlopen', await attack('dlopen', sharedLibrary()), 'succeeds');
    await assertHostHealthy();
  });

  it('worker-eval: no worker thread runs code of its choosing', async (t) => {
    assertOutcome(t, 'worker-eval', await attack('worker-eval'), 'succeeds');
    await assertHostHealthy();
  });

  it('wasi: no WASI instance gets / preopened', async (t) => {
    assertOutcome(t, 'wasi', await attack('wasi'), 'succeeds');
    await assertHostHealthy();
  });

  it('fork-bomb: no process can be started at all (/bin/true)', async (t) => {
    assertOutcome(t, 'fork-bomb', await attack('fork-bomb'), 'succeeds');
    await assertHostHealthy();
  });

  it('connect to the host API port: the host\'s own API is out of reach', async (t) => {
    const { hostname, port } = new URL(apiUrl);
    assertOutcome(t, 'connect api', await attack('connect', `${hostname}:${port}`), 'succeeds');
    await assertHostHealthy();
  });

  it('connect to a loopback service: no network reaches the host\'s loopback', async (t) => {
    assertOutcome(t, 'connect loopback', await attack('connect', `127.0.0.1:${tcpPort}`), 'succeeds');
    await assertHostHealthy();
  });

  it('with an unrelated egress allowance: the host API and a loopback service stay out of reach, directly and through the proxy', async (t) => {
    const { hostname, port } = new URL(apiUrl);
    assertOutcome(t, 'connect api (allowed elsewhere)', await attackFrom('attacker-allowed', 'connect', `${hostname}:${port}`), 'succeeds');
    assertOutcome(t, 'connect loopback (allowed elsewhere)', await attackFrom('attacker-allowed', 'connect', `127.0.0.1:${tcpPort}`), 'succeeds');
    const refusedBefore = notAllowed();
    // Through the proxy: the API is plain HTTP, so this GET could fail for that alone; the proxy's count says it refused.
    assertOutcome(t, 'proxy-get api (allowed elsewhere)', await attackFrom('attacker-allowed', 'proxy-get', `${hostname}:${port}`), 'either');
    if (RESTRICTED) assert.equal(notAllowed(), refusedBefore + 1, 'the egress proxy refused the CONNECT to the host API');
    await assertHostHealthy();

    function notAllowed(): number {
      const sandbox = h.host.registry.instances().find((i) => i.name === 'attacker-allowed')?.sandbox;
      return sandbox?.stats?.().egressRefused?.find((r) => r.reason === 'not-allowed')?.count ?? 0;
    }
  });

  it('big-log: a 16 MB log field does not stall the host', async (t) => {
    // Whatever the sandbox does with the line (refuse it, cut it), the call settles and the host keeps answering,
    // also while the line is on its way: /healthz is probed back to back until the call settles.
    let settledYet = false;
    const call = attack('big-log').then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    void call.finally(() => (settledYet = true));
    let probesDuring = 0;
    while (!settledYet) {
      await assertHealthz();
      probesDuring++;
    }
    t.diagnostic(`${probesDuring} /healthz probe(s) answered while the big line was in flight`);
    const settled = await call;
    if ('error' in settled) t.diagnostic(`big-log: the call was refused: ${String(settled.error)}`);
    if ('result' in settled) assert.equal(settled.result.exitCode, 0, describeResult('big-log', settled.result));
    await assertHostHealthy();
  });
});

