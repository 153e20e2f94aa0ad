import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { ExecutionResult, WorkerProviderContract, Proxied } from '@worker-manager/plugin-sdk';
import { createMetrics } from '../../../host/src/observability/metrics.ts';
import type { InstanceRecord } from '../../../host/src/plugins/PluginRegistry.ts';
import { resetSandboxSupport } from '../../../host/src/sandbox/process/bwrap.ts';
import { LineSplitter } from '../../../host/src/sandbox/process/LineSplitter.ts';
import { repoRoot } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { parseExposition, valueOf } from '../observability/exposition.ts';
import { fixtureDir, fixtureProcessSandbox, rejection } from './sandboxHarness.ts';

type Provider = Proxied<typeof WorkerProviderContract>;

/** Pids of every descendant of `pid`, from /proc/<pid>/task/<tid>/children. */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of text.split(' ').filter((s) => s.trim() !== '').map(Number)) out.push(child, ...(await descendants(child)));
  }
  return out;
}

/** The sandbox's node process (the one running sandbox.mjs), seen from the host. */
async function sandboxNodePid(outer: number | undefined): Promise<number> {
  assert.ok(outer !== undefined, 'the sandbox runs');
  for (const pid of await descendants(outer)) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const argv = cmdline.split('\0');
    // bubblewrap's own processes have sandbox.mjs in their argv too; node is the one whose argv[0] is node.
    if (/\bnode$/.test(argv[0] ?? '') && argv.some((a) => a.endsWith('sandbox.mjs'))) return pid;
  }
  assert.fail('no sandbox.mjs process under the sandbox');
}

const exec = (provider: Provider, command: string[], timeoutMs = budget(30_000)): Promise<ExecutionResult> =>
  provider.executeCommand({ workerId: 'w', command }, { timeoutMs });

describe('ProcessSandbox: a restricted instance in its own confined process', { timeout: budget(300_000) }, () => {
  it('serves calls, streams, events and logs; refuses bad params and operations that were not negotiated on the host side', async (t) => {
    const { sandbox, events, logs } = await fixtureProcessSandbox(t, 'echo');
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    const worker = await p.createWorker({ workerId: 'w1', spec: {} });
    assert.equal(worker.workerId, 'w1');
    assert.equal((await p.executeCommand({ workerId: 'w1', command: ['hello', 'there'] })).stdout, 'hello there');

    await p.executeCommand({ workerId: 'w1', command: ['emit', 'from the sandbox'] });
    await waitFor(() => events.length === 1 && logs.some((l) => l.message === 'from the sandbox'), 'the event and the log line');
    assert.equal(events[0]?.workerId, 'w1');
    const line = logs.find((l) => l.message === 'from the sandbox');
    // The plugin's own fields stay under `plugin`: it cannot overwrite a field of the host's line.
    assert.deepEqual(line?.fields, { pluginId: 'echo', plugin: { workerId: 'w1' } });

    const chunks: string[] = [];
    for await (const chunk of await p.getLogs({ workerId: 'w1', options: {} })) chunks.push((chunk as { data: string }).data);
    assert.deepEqual(chunks, ['line 0\n', 'line 1\n', 'line 2\n']);
    // A follow stream goes on until it is cancelled.
    const follow = await p.getLogs({ workerId: 'w1', options: { follow: true } });
    const seen: string[] = [];
    for await (const chunk of follow) {
      seen.push((chunk as { data: string }).data);
      if (seen.length === 5) break;
    }
    assert.equal(seen.length, 5);

    // 200 calls at once all come back, each with its own answer.
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => p.executeCommand({ workerId: 'w1', command: ['n', String(i)] })));
    assert.deepEqual(answers.map((a) => a.stdout), Array.from({ length: 200 }, (_, i) => `n ${i}`));

    const invalid = await rejection(p.createWorker({ workerId: 'NOT VALID', spec: {} } as never));
    assert.equal(invalid.code, 'WM_ERR_VALIDATION');
    // echo never negotiated pause.
    assert.equal((await rejection(p.pauseWorker({ workerId: 'w1' }))).code, 'WM_ERR_COMPATIBILITY');
    assert.equal(sandbox.stats().state, 'running');
  });

  it('runs the plugin as nobody, in its own user, pid, network, ipc and uts namespaces, with only the granted environment', async (t) => {
    const { sandbox, stateDir: root } = await fixtureProcessSandbox(t, 'attacker', { env: { GRANTED: 'yes' } });
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    // The plugin's threads see what the manifest grants, nothing of the host's.
    assert.deepEqual(Object.keys(JSON.parse((await exec(p, ['env'])).stdout) as Record<string, string>), ['GRANTED']);
    // Seen from the host: uid 65534 inside its own user namespace, and namespaces of its own.
    const node = await sandboxNodePid(sandbox.pid);
    assert.match(await readFile(`/proc/${node}/uid_map`, 'utf8'), /^\s*65534\s+\d+\s+1\s*$/);
    for (const ns of ['user', 'pid', 'net', 'ipc', 'uts']) {
      assert.notEqual(await readlink(`/proc/${node}/ns/${ns}`), await readlink(`/proc/self/ns/${ns}`), `the ${ns} namespace is the host's`);
    }
    // The process itself starts with only HOME, PWD and TMPDIR (its own folders): /proc/<pid>/environ shows nothing of the host's.
    const environ = (await readFile(`/proc/${node}/environ`, 'utf8')).split('\0').filter((e) => e !== '');
    assert.deepEqual(environ.map((e) => e.split('=')[0]).sort(), ['HOME', 'PWD', 'TMPDIR']);
    // Its own state folder is writable (and readable); /tmp, its package and anything else are not.
    const stateDir = join(root, 'state');
    assert.equal((await exec(p, ['write', join(stateDir, 'kept.txt')])).exitCode, 0);
    assert.match(await readFile(join(stateDir, 'kept.txt'), 'utf8'), /written by the attacker/);
    assert.equal((await exec(p, ['read', join(stateDir, 'kept.txt')])).exitCode, 0);
    assert.equal((await exec(p, ['write', '/tmp/x.txt'])).exitCode, 1);
    // Signals reach nothing outside: the host's pid does not exist in its pid namespace.
    assert.equal((await exec(p, ['kill-pid', String(process.pid)])).exitCode, 1);
  });

  it('a sandbox process that is killed fails its call with HOST_ERR_PLUGIN_CRASHED and restarts; a frozen one is killed as hung', async (t) => {
    const { sandbox, statuses } = await fixtureProcessSandbox(t, 'echo', { limits: { hangTimeoutMs: 1_500, heartbeatMs: 100 } });
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    await p.createWorker({ workerId: 'w1', spec: {} });
    const inFlight = p.executeCommand({ workerId: 'w1', command: ['sleep-cooperative', '60000'] }, { timeoutMs: budget(60_000) });
    process.kill(await sandboxNodePid(sandbox.pid), 'SIGKILL');
    const crash = await rejection(inFlight);
    assert.equal(crash.code, 'HOST_ERR_PLUGIN_CRASHED');
    assert.equal(crash.details?.['instance'], 'echo-test');
    await waitFor(() => statuses.some((s) => s.state === 'running' && s.reason === 'restarted'), 'the restart', budget(60_000));
    assert.deepEqual(statuses.filter((s) => s.reason !== 'started').map((s) => s.state), ['crashed', 'restarting', 'running']);
    // A new process, with none of the old one's workers (echo keeps them in memory).
    assert.equal((await rejection(p.getWorkerStatus({ workerId: 'w1' }))).code, 'WM_ERR_NOT_FOUND');
    await p.createWorker({ workerId: 'w2', spec: {} });

    // Frozen: no line, not even a heartbeat, for hangTimeoutMs.
    const frozen = await sandboxNodePid(sandbox.pid);
    const stuck = p.executeCommand({ workerId: 'w2', command: ['sleep-cooperative', '60000'] }, { timeoutMs: budget(60_000) });
    process.kill(frozen, 'SIGSTOP');
    assert.equal((await rejection(stuck)).code, 'HOST_ERR_PLUGIN_HUNG');
    await waitFor(() => statuses.filter((s) => s.reason === 'restarted').length === 2, 'the second restart', budget(60_000));
    assert.equal(sandbox.stats().crashes, 2);
    assert.equal(sandbox.stats().restarts, 2);
  });

  it('spending the restart budget quarantines the instance', async (t) => {
    const { sandbox, statuses } = await fixtureProcessSandbox(t, 'echo', { limits: { restart: { maxRestarts: 1, windowMs: 600_000, backoffMs: 10, maxBackoffMs: 10 } } });
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    process.kill(await sandboxNodePid(sandbox.pid), 'SIGKILL');
    await waitFor(() => statuses.some((s) => s.reason === 'restarted'), 'the restart', budget(60_000));
    process.kill(await sandboxNodePid(sandbox.pid), 'SIGKILL');
    await waitFor(() => sandbox.state === 'quarantined', 'the quarantine', budget(60_000));
    assert.equal((await rejection(p.listWorkers({}))).code, 'HOST_ERR_PLUGIN_QUARANTINED');
    assert.equal(statuses.at(-1)?.state, 'quarantined');
  });

  it('bounds the whole process: Buffers past limits.process.memoryMb are refused, and the instance keeps answering', async (t) => {
    const { sandbox } = await fixtureProcessSandbox(t, 'attacker', { limits: { heapMb: 64, process: { memoryMb: 3_072 } } });
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    // 256 MiB fits; 3 GiB does not, though every byte of it is off the V8 heap.
    assert.equal((await exec(p, ['buffers', '256'])).exitCode, 0);
    const big = await exec(p, ['buffers', '3072']).catch((error: unknown) => error);
    if (!(big instanceof Error)) assert.equal((big as ExecutionResult).exitCode, 1, 'the 3 GiB of Buffers were refused');
    await waitFor(async () => (await p.listWorkers({}).catch(() => undefined)) !== undefined, 'the instance to answer again', budget(60_000));
  });

  it('limits its CPU with a cgroup quota: a busy thread is throttled, and the cgroup goes with the process', async (t) => {
    const { sandbox } = await fixtureProcessSandbox(t, 'attacker', { limits: { process: { cpuPercent: 10 } } });
    await sandbox.start();
    const stat = sandbox.cpuStatFile;
    assert.ok(stat !== undefined, 'this machine lets the host create cgroups (the CI machine does)');
    const node = await sandboxNodePid(sandbox.pid);
    const group = stat.split('/').at(-2) ?? '';
    assert.match(await readFile(`/proc/${node}/cgroup`, 'utf8'), new RegExp(`/${group}$`, 'm'));
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    assert.equal((await exec(p, ['burn', '1500'])).exitCode, 0);
    const throttled = Number(/^nr_throttled (\d+)$/m.exec(await readFile(stat, 'utf8'))?.[1]);
    assert.ok(throttled > 0, `nr_throttled ${throttled}`);
    await sandbox.stop();
    await waitFor(async () => !(await readFile(stat).then(() => true, () => false)), 'the cgroup to be removed');
  });

  it('reaches only the egress targets it lists, through the host\'s proxy, and counts what it refused', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wm-egress-sandbox-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
    const server = https.createServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (_req, res) => res.end('hello from the allowed server'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const other = https.createServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (_req, res) => res.end('must not be reached'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => other.close(resolve)));
    const port = (server.address() as AddressInfo).port;
    const otherPort = (other.address() as AddressInfo).port;

    const refusals: string[] = [];
    const { sandbox } = await fixtureProcessSandbox(t, 'attacker', { egress: [`127.0.0.1:${port}`], onEgressRefused: (target) => refusals.push(target) });
    await sandbox.start();
    const p = sandbox.proxy<typeof WorkerProviderContract>();
    const allowed = await exec(p, ['proxy-get', `127.0.0.1:${port}`]);
    assert.equal(allowed.exitCode, 0, allowed.stderr);
    assert.equal(allowed.stdout, 'hello from the allowed server');
    const refused = await exec(p, ['proxy-get', `127.0.0.1:${otherPort}`]);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /refused/);
    // A direct connection has no route at all: the sandbox's network namespace has only its own loopback.
    assert.equal((await exec(p, ['connect', `127.0.0.1:${port}`])).exitCode, 1);
    assert.deepEqual(refusals, [`127.0.0.1:${otherPort}`]);
    assert.deepEqual(sandbox.stats().egressRefused, [{ reason: 'not-allowed', count: 1 }]);
    // And as the host exports it: read from the sandbox at scrape time.
    const metrics = createMetrics();
    metrics.watch({ registry: { instances: () => [{ name: 'egress-test', entry: { plugin: 'attacker' }, sandbox, state: 'running' } as unknown as InstanceRecord] } });
    const samples = parseExposition(await metrics.render());
    assert.equal(valueOf(samples, 'plugin_egress_refused_total', { plugin_instance: 'egress-test', plugin: 'attacker', reason: 'not-allowed' }), 1);
  });

  it('refuses a package with a symlink that leaves it (HOST_ERR_PLUGIN_PACKAGE_UNSAFE), and a machine without bubblewrap (HOST_ERR_SANDBOX_UNAVAILABLE)', async (t) => {
    // Inside the repository, so the copy's imports resolve from its node_modules as an installed plugin's would.
    const base = await mkdtemp(join(repoRoot, 'node_modules', '.wm-test-pkg-'));
    t.after(() => rm(base, { recursive: true, force: true }));
    const secret = join(base, 'outside-token');
    await writeFile(secret, 'admin-token-value');
    const pkg = join(base, 'echo-copy');
    await cp(fixtureDir('echo'), pkg, { recursive: true });
    await symlink(secret, join(pkg, 'token.txt'));
    const { sandbox } = await fixtureProcessSandbox(t, 'echo', { entry: join(pkg, 'index.ts'), packageDir: pkg });
    const unsafe = await rejection(sandbox.start());
    assert.equal(unsafe.code, 'HOST_ERR_PLUGIN_PACKAGE_UNSAFE');
    assert.match(unsafe.message, /token\.txt/);
    assert.doesNotMatch(JSON.stringify(unsafe), /admin-token-value/);

    process.env['WM_BWRAP'] = join(base, 'no-bwrap-here');
    resetSandboxSupport();
    t.after(() => {
      delete process.env['WM_BWRAP'];
      resetSandboxSupport();
    });
    const { sandbox: second } = await fixtureProcessSandbox(t, 'echo');
    const missing = await rejection(second.start());
    assert.equal(missing.code, 'HOST_ERR_SANDBOX_UNAVAILABLE');
    assert.match(missing.message, /no-bwrap-here/);
  });
});

describe('ProcessSandbox: the bundle cache', { timeout: budget(300_000) }, () => {
  it('reuses the bundle of an unchanged package, and never serves a stale one once the package changed', async (t) => {
    const base = await mkdtemp(join(repoRoot, 'node_modules', '.wm-test-pkg-'));
    t.after(() => rm(base, { recursive: true, force: true }));
    const pkg = join(base, 'echo-copy');
    await cp(fixtureDir('echo'), pkg, { recursive: true });
    const run = async (): Promise<string> => {
      const { sandbox } = await fixtureProcessSandbox(t, 'echo', { entry: join(pkg, 'index.ts'), packageDir: pkg });
      await sandbox.start();
      const p = sandbox.proxy<typeof WorkerProviderContract>();
      await p.createWorker({ workerId: 'w1', spec: {} });
      const out = (await p.executeCommand({ workerId: 'w1', command: ['which', 'version'] })).stdout;
      await sandbox.stop();
      return out;
    };
    assert.equal(await run(), 'which version');
    assert.equal(await run(), 'which version');
    const source = join(pkg, 'index.ts');
    await writeFile(source, (await readFile(source, 'utf8')).replace("let stdout = command.join(' ');", "let stdout = `v2 ${command.join(' ')}`;"));
    assert.equal(await run(), 'v2 which version');
  });
});

describe('LineSplitter', () => {
  it('splits lines across chunks, and drops a line longer than its limit without holding it', () => {
    const s = new LineSplitter(8);
    assert.deepEqual(s.push(Buffer.from('ab\ncd')), ['ab']);
    assert.deepEqual(s.push(Buffer.from('ef\n')), ['cdef']);
    assert.deepEqual(s.push(Buffer.from('0123456789')), []);
    assert.deepEqual(s.push(Buffer.from('more of the long line\nok\n')), ['ok']);
    assert.equal(s.takeDropped(), 31);
    assert.deepEqual(s.push(Buffer.from('12345678\n123456789\nx\n')), ['12345678', 'x']);
    assert.equal(s.takeDropped(), 9);
  });
});
