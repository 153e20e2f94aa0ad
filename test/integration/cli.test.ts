import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../helpers/startTestHost.ts';

// The package's bin, as `npx wm` runs it: the host is the process that gets the signals (see the npm start test below).
const bin = path.join(repoRoot, 'host', 'bin', 'wm.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `wm` as a real process, the way a user does. */
type OnOutput = (text: string, child: ReturnType<typeof spawn>) => void;

function wm(args: string[], options: { onStdout?: OnOutput; onStderr?: OnOutput; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: { ...process.env, WM_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wm ${args.join(' ')} did not finish in time; stdout: ${stdout}; stderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      options.onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('wm CLI', () => {
  let dir: string;
  let config: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-cli-'));
    config = path.join(dir, 'wm.yaml');
    await writeFile(
      config,
      `host: { id: cli-test, stateDir: ./state, logLevel: warn }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "\${PATH}" }
instances:
  - { name: local, plugin: process, default: true }
`,
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('wm run runs one worker end to end and exits with its exit code', async () => {
    const r = await wm(['run', '--config', config, '--', 'sh', '-c', 'echo hello from a worker; echo oops >&2; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /hello from a worker/);
    assert.match(r.stderr, /oops/);
    assert.match(r.stderr, /Failed|exit code 3/);
    // Host logs stay out of the way at the default level of wm run.
    assert.doesNotMatch(r.stderr, /"msg":"host started"/);
  });

  it('wm run reports a success as exit code 0', async () => {
    const r = await wm(['run', '--config', config, '--', 'sh', '-c', 'echo done']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^done$/m);
  });

  it('the installed wm bin (npx wm) runs without tsx on the command line', async () => {
    const r = await new Promise<Run>((resolve, reject) => {
      const child = spawn(path.join(repoRoot, 'node_modules', '.bin', 'wm'), ['config', 'validate', 'config/default.yaml'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /config is valid/);
  });

  it('wm config validate accepts the shipped configs and starts no plugin', async () => {
    for (const file of ['config/default.yaml', 'config/examples/process-two-instances.yaml']) {
      const r = await wm(['config', 'validate', file]);
      assert.equal(r.code, 0, `${file}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /validated/);
      assert.match(r.stdout, /config is valid/);
    }
  });

  it('wm config validate names file:line:col of every problem and exits 2', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'host:\n  stateDir: 42\nplugins:\n  - name: Process\n    package: x\n    colour: blue\n');
    const r = await wm(['config', 'validate', bad]);
    assert.equal(r.code, 2);
    // Positions point at the key of the offending entry.
    assert.match(r.stderr, /bad\.yaml:2:3: \/host\/stateDir: expected string, found integer/);
    assert.match(r.stderr, /bad\.yaml:4:5: \/plugins\/0\/name/);
    assert.match(r.stderr, /bad\.yaml:6:5: \/plugins\/0\/colour: unknown field 'colour'/);
  });

  it('wm config validate reports a plugin that would fail negotiation', async () => {
    const bad = path.join(dir, 'negotiation.yaml');
    await writeFile(bad, `plugins:\n  - name: old\n    package: ${repoRoot}test/fixtures/plugins/negotiation-host-api\ninstances:\n  - { name: old, plugin: old }\n`);
    const r = await wm(['config', 'validate', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /HOST_ERR_HOST_API_MISMATCH/);
  });

  it('npm start: wm serve on config/default.yaml prints the startup report and stops cleanly on SIGTERM', async () => {
    let signalled = false;
    const r = await wm(['serve', '--config', 'config/default.yaml'], {
      onStdout: (text, child) => {
        if (!signalled && /local \(default\)\s+process\s+0\.1\.0\s+provider\s+trusted\s+running/.test(text)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      },
    });
    assert.ok(signalled, `never saw the startup report: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /worker\.lifecycle@1\.0\.0/);
    assert.match(r.stdout, /received SIGTERM, stopping/);
  });

  it('npm start: a SIGTERM to npm, even while the host is busy, stops the host cleanly (regressions: the tsx CLI SIGKILLed a host that did not answer within 30 ms; npm signalled a shell that died and left the host running)', { timeout: 60_000 }, async () => {
    // `npm start` itself, as a supervisor (or `docker stop` with npm as PID 1) runs it.
    const child = spawn('npm', ['start'], { cwd: repoRoot, env: { ...process.env, WM_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hostPid: number | undefined;
    let stopped = false;
    // npm's exit, not 'close': a host that npm left behind keeps the output pipes open.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const drained = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let r: { code: number | null; signal: NodeJS.Signals | null };
    try {
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject);
        const check = (): void => {
          hostPid ??= Number(/"pid":(\d+)/.exec(stderr)?.[1] ?? Number.NaN) || undefined;
          if (hostPid !== undefined && /' started \(bus:/.test(stdout)) resolve();
        };
        child.stdout.on('data', (d: Buffer) => ((stdout += d.toString()), check()));
        child.stderr.on('data', (d: Buffer) => ((stderr += d.toString()), check()));
        void exited.then(() => reject(new Error(`the host exited before it started: ${stdout}${stderr}`)));
      });
      assert.notEqual(hostPid, child.pid, 'the host logged npm\'s pid');
      // A stopped process stands in for an event loop stalled by start-up work, a long GC or a loaded machine, with
      // no timing luck involved: the signal must wait, not turn into a SIGKILL.
      process.kill(hostPid as number, 'SIGSTOP');
      stopped = true;
      child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(hostPid as number, 'SIGCONT');
      stopped = false;
      r = await exited;
      for (let i = 0; i < 50 && alive(hostPid as number); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(alive(hostPid as number), false, `npm exited (${String(r.code)}) and left the host running`);
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    } finally {
      clearTimeout(timer);
      if (hostPid !== undefined && alive(hostPid)) {
        if (stopped) process.kill(hostPid, 'SIGCONT');
        process.kill(hostPid, 'SIGKILL');
      }
    }
    assert.equal(r.signal, null, `killed by ${String(r.signal)}: ${stdout}${stderr}`);
    assert.equal(r.code, 0, stderr);
    assert.match(stdout, /received SIGTERM, stopping/);
  });

  it('wm serve stops cleanly on a SIGTERM that arrives during start-up (regression: a signal before the listener killed it)', async () => {
    let during: boolean | undefined;
    let stdout = '';
    const r = await wm(['serve', '--config', 'config/default.yaml'], {
      onStdout: (text) => (stdout = text),
      // Host logs go to stderr; the first is written while start() runs, before the start line on stdout.
      onStderr: (text, child) => {
        if (during !== undefined || !text.includes('"level"')) return;
        during = !stdout.includes("' started (bus:");
        child.kill('SIGTERM');
      },
    });
    assert.equal(during, true, `the signal was not sent during start-up: ${r.stdout}`);
    assert.equal(r.signal, null, `killed by ${String(r.signal)}: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /received SIGTERM, stopping/);
  });

  it('wm run: Ctrl-C terminates the worker (in its own process group, out of reach of the terminal), stops the host and exits 130', async () => {
    let pid: number | undefined;
    const r = await wm(['run', '--config', config, '--', 'sh', '-c', 'echo "pid $$"; exec sleep 60'], {
      onStdout: (text, child) => {
        const m = /pid (\d+)/.exec(text);
        if (pid !== undefined || m === null) return;
        pid = Number(m[1]);
        child.kill('SIGINT');
      },
    });
    assert.ok(pid !== undefined, `the worker never printed its pid: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /Terminated \(interrupted by SIGINT\)/);
    assert.throws(() => process.kill(pid as number, 0), { code: 'ESRCH' }, 'the worker outlived wm run');
  });

  it('wm serve keeps serving until it is told to stop (regression: it exited once start-up work drained)', async () => {
    let alive = false;
    let sawReport = false;
    const r = await wm(['serve', '--config', config], {
      onStdout: (text, child) => {
        if (sawReport || !/running/.test(text)) return;
        sawReport = true;
        // Plugin threads idle out and start-up timers end within a few seconds; the host must outlive them.
        setTimeout(() => {
          alive = child.exitCode === null && child.signalCode === null;
          child.kill('SIGINT');
        }, 5_000);
      },
    });
    assert.ok(sawReport, r.stderr);
    assert.ok(alive, 'wm serve exited on its own');
    assert.equal(r.code, 0, r.stderr);
  });
});
