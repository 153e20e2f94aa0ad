import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { parseConfig } from '../../host/src/config/loadConfig.ts';
import { Host } from '../../host/src/Host.ts';
import type { Authorizer } from '../../host/src/security/authz/Authorizer.ts';
import { collectOutput, finished } from '../helpers/childProcess.ts';
import { killProcessWorkers } from '../helpers/processWorkers.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';

const main = path.join(repoRoot, 'host', 'src', 'cli', 'main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The shipped default policy lets the local admin do everything; this stands in for it so the test does not depend
// on the policy files, and still refuses anyone else.
const localAdminOnly: Authorizer = {
  adapter: 'test-local-admin',
  start: async () => undefined,
  stop: async () => undefined,
  authorize: async (req) => (req.principal.source === 'local-admin' ? { decision: 'allow', policies: ['test'], errors: [] } : { decision: 'deny', policies: [], errors: [] }),
};

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('wm API commands against a real host (process provider, REST API on port 0)', () => {
  let dir: string;
  let host: Host;
  let env: NodeJS.ProcessEnv;
  let token: string;
  const runs: Run[] = [];

  /** Runs the real `wm` as a child process, the way a user does (several at once: each may take 10-15 s under load). */
  async function wm(args: string[], options: { env?: NodeJS.ProcessEnv; onStderr?: (text: string) => void } = {}): Promise<Run> {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { cwd: repoRoot, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const onStderr = options.onStderr;
    const { code, stdout, stderr } = await finished(child, `wm ${args.join(' ')}`, collectOutput(child, onStderr === undefined ? {} : { onStderr: (text) => onStderr(text) }), 90_000);
    const run = { code, stdout, stderr };
    runs.push(run);
    return run;
  }

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-cli-api-'));
    const file = path.join(dir, 'wm.yaml');
    const yaml = `host: { id: cli-api, stateDir: ${dir}/state }
api: { enabled: true, port: 0 }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "\${PATH}" }
instances:
  - { name: local, plugin: process, default: true }
`;
    await writeFile(file, yaml);
    const loaded = parseConfig(yaml, file, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
    host = new Host({ loaded, logger: pino({ level: 'silent' }), authorizer: localAdminOnly });
    await host.start();
    assert.ok(host.apiUrl !== undefined, 'the API did not start');
    const tokenFile = path.join(dir, 'state', 'admin.token');
    token = (await readFile(tokenFile, 'utf8')).trim();
    // HOME points at the temp dir so no real ~/.config/worker-manager/cli.yaml is read.
    env = { PATH: process.env['PATH'], HOME: dir, WM_URL: host.apiUrl, WM_TOKEN_FILE: tokenFile };
  });

  after(async () => {
    await host?.stop({ timeoutMs: budget(30_000) });
    // Process workers outlive their host by design; a test that failed before terminating its own leaves none behind.
    await Promise.all((host?.registry.instances() ?? []).map((i) => (i.stateDir === undefined ? undefined : killProcessWorkers(i.stateDir))));
    await rm(dir, { recursive: true, force: true });
  });

  it('drives workers end to end: create (with progress), list, get, exec, logs -f, terminate; tables and --json', async () => {
    const [long, short] = await Promise.all([
      wm(['workers', 'create', '--label', 'suite=cli', '-e', 'GREETING=hello', '--', 'sh', '-c', 'echo "$GREETING from worker"; echo to-stderr >&2; exec sleep 600']),
      wm(['workers', 'create', '--json', '--label', 'suite=cli', '--', 'sh', '-c', 'echo line-1; sleep 1; echo line-2; echo line-3 >&2']),
    ]);
    assert.equal(long.code, 0, long.stderr);
    assert.match(long.stderr, /creating worker/);
    assert.match(long.stderr, /worker \S+ is Running \(\d+\.\d s\)/);
    const lines = long.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^ID\s+INSTANCE\s+STATE\s+CREATED\s+LABELS$/);
    const longId = (lines[1] ?? '').split(/\s+/)[0] ?? '';
    assert.match(lines[1] ?? '', /\slocal\s+Running\s+\S+\s+suite=cli(,|$)/);

    assert.equal(short.code, 0, short.stderr);
    // --json prints the worker as GET /v1/workers/{id} answers it, as the wait for Running left it.
    const created = JSON.parse(short.stdout) as { instance: string; workerId: string; state: { phase: string }; phase: string; stale: boolean; record?: { id: string; labels: Record<string, string> } };
    assert.equal(created.instance, 'local');
    assert.deepEqual([created.phase, created.state.phase, created.stale], ['Running', 'Running', false]);
    assert.equal(created.record?.id, created.workerId);
    assert.equal(created.record?.labels['suite'], 'cli');
    const shortId = created.workerId;

    const [listTable, listJson, getTable, getJson, exec, execJson, follow, logsJson] = await Promise.all([
      wm(['workers', 'list', '-l', 'suite=cli']),
      wm(['workers', 'list', '--json', '--label', 'suite=cli']),
      wm(['workers', 'get', longId]),
      wm(['workers', 'get', longId, '--json']),
      wm(['workers', 'exec', longId, '--', 'sh', '-c', 'echo out-of-exec; echo err-of-exec >&2; exit 7']),
      wm(['workers', 'exec', '--json', longId, '--', 'sh', '-c', 'echo json-exec; exit 3']),
      wm(['workers', 'logs', '-f', shortId]),
      wm(['workers', 'logs', longId, '--json']),
    ]);

    assert.equal(listTable.code, 0, listTable.stderr);
    for (const id of [longId, shortId]) assert.match(listTable.stdout, new RegExp(`^${id}\\s+local\\s`, 'm'));
    assert.equal(listJson.code, 0, listJson.stderr);
    const page = JSON.parse(listJson.stdout) as { items: Array<{ instance: string; worker: { workerId: string } }> };
    assert.deepEqual(page.items.map((i) => i.worker.workerId).sort(), [longId, shortId].sort());

    assert.equal(getTable.code, 0, getTable.stderr);
    assert.match(getTable.stdout, new RegExp(`^id:\\s+${longId}$`, 'm'));
    assert.match(getTable.stdout, /^phase:\s+Running$/m);
    const { record, ...status } = JSON.parse(getJson.stdout) as { record?: { id: string; history: Array<{ to: string }> } };
    assert.deepEqual(status, { instance: 'local', workerId: longId, state: { phase: 'Running' }, phase: 'Running', stale: false });
    assert.equal(record?.id, longId);
    assert.ok(record?.history.some((h) => h.to === 'Running'), 'the ledger record and its history come with --json');

    // Plain exec behaves like the command: its output on our stdout/stderr, its exit code ours.
    assert.equal(exec.code, 7, exec.stderr);
    assert.equal(exec.stdout, 'out-of-exec\n');
    assert.equal(exec.stderr, 'err-of-exec\n');
    // --json is for scripts: the call succeeded (exit 0), the command's exit code is in the JSON.
    assert.equal(execJson.code, 0, execJson.stderr);
    const result = JSON.parse(execJson.stdout) as { exitCode: number; stdout: string; timedOut: boolean };
    assert.equal(result.exitCode, 3);
    assert.equal(result.stdout, 'json-exec\n');
    assert.equal(result.timedOut, false);

    // Follow ends when the worker's output ends, with every line in order, each on its own stream.
    assert.equal(follow.code, 0, follow.stderr);
    assert.equal(follow.stdout, 'line-1\nline-2\n');
    assert.equal(follow.stderr, 'line-3\n');

    assert.equal(logsJson.code, 0, logsJson.stderr);
    const chunks = JSON.parse(logsJson.stdout) as Array<{ stream: string; data: string; seq: number }>;
    assert.ok(chunks.some((c) => c.stream === 'stdout' && c.data.includes('hello from worker')), logsJson.stdout);
    assert.ok(chunks.some((c) => c.stream === 'stderr' && c.data.includes('to-stderr')), logsJson.stdout);

    const [terminated, again] = await Promise.all([wm(['workers', 'terminate', longId]), wm(['workers', 'terminate', shortId, '--json'])]);
    assert.equal(terminated.code, 0, terminated.stderr);
    assert.match(terminated.stdout, new RegExp(`^worker ${longId} on local: (Terminated|Failed)`));
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { workerId: string }).workerId, shortId);
  });

  it('follows bus events: the created event of a worker arrives as one envelope per line', async () => {
    let created: Promise<unknown> | undefined;
    const events = await wm(['events', '--json', '--subject', 'ci.worker.created', '--worker', 'cli-evt-1', '--max', '1'], {
      // The stream is open (and subscribed) once wm says so: only then is the worker created, so nothing is missed.
      onStderr: (text) => {
        if (created === undefined && text.includes('following events')) created = host.workers.createWorker({ workerId: 'cli-evt-1', spec: { command: ['sleep', '600'] } });
      },
    });
    await created;
    await host.workers.terminateWorker('cli-evt-1');
    assert.equal(events.code, 0, events.stderr);
    const envelope = JSON.parse(events.stdout.trim()) as { id: string; type: string; subject: string; busSubject: string };
    assert.equal(envelope.subject, 'cli-evt-1');
    assert.equal(envelope.busSubject, 'ci.worker.created');

    // Published while nobody was following: --after gets it from the server's recent history.
    await host.workers.createWorker({ workerId: 'cli-evt-2', spec: { command: ['sleep', '600'] } });
    await host.workers.terminateWorker('cli-evt-2');
    const missed = await wm(['events', '--json', '--subject', 'ci.worker.created', '--after', envelope.id, '--max', '1']);
    assert.equal(missed.code, 0, missed.stderr);
    assert.equal((JSON.parse(missed.stdout.trim()) as { subject: string }).subject, 'cli-evt-2');

    // An id the server no longer holds: a warning on stderr, and the stream goes on live: an event published after the
    // warning arrives (and ends the command), where a fixed --timeout could run out before a loaded wm even connects.
    let live: Promise<unknown> | undefined;
    const gap = await wm(['events', '--json', '--subject', 'ci.worker.created', '--worker', 'cli-evt-3', '--after', 'evt-unknown', '--max', '1'], {
      onStderr: (text) => {
        if (live === undefined && text.includes('is not among the events')) live = host.workers.createWorker({ workerId: 'cli-evt-3', spec: { command: ['sleep', '600'] } });
      },
    });
    await live;
    await host.workers.terminateWorker('cli-evt-3');
    assert.equal(gap.code, 0, gap.stderr);
    assert.match(gap.stderr, /warning: event evt-unknown is not among the events this server still holds/);
    assert.equal((JSON.parse(gap.stdout.trim()) as { subject: string }).subject, 'cli-evt-3');
  });

  it('lists providers and plugins, maps errors to documented exit codes, and never prints the token', async () => {
    const port = await closedPort();
    const [providers, plugins, pluginsJson, missing, unreachable, noToken, badSpec, terminateMissing, version, versionFlag, versionUnreachable] = await Promise.all([
      wm(['providers', 'list']),
      wm(['plugins', 'list']),
      wm(['plugins', 'inspect', 'process', '--json']),
      wm(['workers', 'get', 'no-such-worker']),
      wm(['workers', 'list', '--url', `http://127.0.0.1:${port}`]),
      wm(['workers', 'list'], { env: { WM_TOKEN_FILE: '' } }),
      wm(['workers', 'create', '--memory', 'lots', '--', 'true']),
      wm(['workers', 'terminate', 'no-such-worker']),
      wm(['version']),
      wm(['--version']),
      wm(['version', '--url', `http://127.0.0.1:${port}`]),
    ]);
    assert.equal(providers.code, 0, providers.stderr);
    assert.match(providers.stdout, /^INSTANCE\s+PLUGIN\s+VERSION\s+STATE/);
    assert.match(providers.stdout, /^local \(default\)\s+process\s+\S+\s+running\s+\S+\s+.*worker\.lifecycle@/m);
    assert.equal(plugins.code, 0, plugins.stderr);
    assert.match(plugins.stdout, /^process\s+\S+\s+\S+\s+provider\s+trusted\s+local\*:running/m);
    assert.equal(pluginsJson.code, 0, pluginsJson.stderr);
    const detail = JSON.parse(pluginsJson.stdout) as { name: string; methods: string[]; instances: Array<{ name: string }> };
    assert.equal(detail.name, 'process');
    assert.ok(detail.methods.includes('createWorker'), pluginsJson.stdout);

    assert.equal(missing.code, 3, missing.stderr);
    assert.match(missing.stderr, /^wm: \[WM_ERR_NOT_FOUND\] /);
    assert.equal(unreachable.code, 5, unreachable.stderr);
    assert.match(unreachable.stderr, new RegExp(`^wm: \\[HOST_ERR_CLI_UNREACHABLE\\] cannot reach the worker-manager API at http://127.0.0.1:${port}`));
    assert.match(unreachable.stderr, /ECONNREFUSED; is the host running\? Start it with `npm start`/);
    // A mistyped id is not a success: nothing was terminated.
    assert.equal(terminateMissing.code, 3, terminateMissing.stderr);
    assert.match(terminateMissing.stderr, /^wm: \[WM_ERR_NOT_FOUND\] no worker 'no-such-worker'/);
    assert.equal(terminateMissing.stdout, '');
    const ownVersion = (JSON.parse(await readFile(path.join(repoRoot, 'host/package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^client: ${ownVersion.replaceAll('.', '\\.')} \\(plugin host API \\d+\\.\\d+\\.\\d+\\)\\nhost: +${ownVersion.replaceAll('.', '\\.')} \\(plugin host API \\d+\\.\\d+\\.\\d+\\) at http://127\\.0\\.0\\.1:\\d+\\n$`));
    assert.equal(versionFlag.code, 0, versionFlag.stderr);
    assert.equal(versionFlag.stdout, `${ownVersion}\n`);
    // The client's version still prints when the host cannot be reached; the exit code says the host part failed.
    assert.equal(versionUnreachable.code, 5, versionUnreachable.stderr);
    assert.match(versionUnreachable.stdout, /^client: /);
    assert.equal(noToken.code, 4, noToken.stderr);
    assert.match(noToken.stderr, /^wm: \[WM_ERR_AUTHENTICATION\] /);
    assert.equal(badSpec.code, 2, badSpec.stderr);
    assert.match(badSpec.stderr, /^wm: \[WM_ERR_VALIDATION\] --memory takes MiB/);

    for (const run of runs) assert.ok(!run.stdout.includes(token) && !run.stderr.includes(token), 'the token was printed');
  });

  it('prints bash and zsh completion scripts that name every command and option', async () => {
    const [bash, zsh] = await Promise.all([wm(['completion', 'bash']), wm(['completion', 'zsh'])]);
    assert.equal(bash.code, 0, bash.stderr);
    assert.equal(zsh.code, 0, zsh.stderr);
    const commands = [
      '/serve', '/run', '/config', '/config/validate', '/completion', '/events', '/plugins', '/plugins/list', '/plugins/inspect', '/providers', '/providers/list',
      '/secrets', '/secrets/versions', '/secrets/rotate', '/secrets/rollback', '/workers', ...['create', 'list', 'get', 'logs', 'exec', 'pause', 'resume', 'restart', 'terminate'].map((c) => `/workers/${c}`),
    ];
    for (const script of [bash.stdout, zsh.stdout]) {
      for (const command of commands) assert.ok(script.includes(`'${command}')`), `completion has no case for ${command}`);
      for (const option of ['--idempotency-key', '--no-wait', '--follow', '--token-file', '--json']) assert.ok(script.includes(option), `completion lacks ${option}`);
    }
    assert.match(bash.stdout, /complete -o default -F _wm_completion wm/);
    assert.match(zsh.stdout, /^#compdef wm/);

    // The bash script really completes: subcommands, options of the command reached, choices of an option value.
    const script = path.join(dir, 'wm-completion.bash');
    await writeFile(script, bash.stdout);
    const complete = (words: string[]): string => {
      const line = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _wm_completion; echo "\${COMPREPLY[*]}"`;
      return execFileSync('bash', ['--norc', '-c', line], { encoding: 'utf8' }).trim();
    };
    assert.equal(complete(['wm', 'work']), 'workers');
    assert.deepEqual(complete(['wm', 'workers', '']).split(' ').filter((w) => !w.startsWith('-')), ['create', 'list', 'get', 'logs', 'exec', 'pause', 'resume', 'restart', 'terminate', 'port-forward']);
    assert.equal(complete(['wm', 'workers', 'create', '--idem']), '--idempotency-key');
    assert.equal(complete(['wm', 'completion', '']).split(' ').filter((w) => !w.startsWith('-')).join(' '), 'bash zsh');
    assert.equal(complete(['wm', 'run', '--log-level', 'w']), 'warn');
  });
});
