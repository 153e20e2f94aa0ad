import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { budget, waitFor } from './waitFor.ts';

/** A nats-server with JetStream on a free loopback port and a temporary store, stoppable for fault tests. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM by default; SIGKILL simulates a crash). The store is kept. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stops it and removes the store. */
  dispose(): Promise<void>;
}

const BINARY = process.env['NATS_SERVER_BIN'] ?? 'nats-server';

/**
 * Whether nats-server exists. In CI a missing server is a failure (the test must never be skipped there); elsewhere
 * the caller skips with a message that names the command starting the services.
 */
export function natsServerAvailable(): { ok: true } | { ok: false; message: string } {
  const probe = spawnSync(BINARY, ['--version'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return { ok: true };
  const message = `nats-server not found (${BINARY}): run \`npm run services:up\` to install and start it`;
  if (process.env['CI'] === 'true') throw new Error(`${message} (CI=true: NATS tests must not be skipped)`);
  console.warn(`\n*** SKIPPING NATS TESTS: ${message} ***\n`);
  return { ok: false, message };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers on `port`; fails at once if it exited, and after a budget sized for a loaded machine. */
async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}:\n${log()}`);
      // JetStream is ready once the server logged it; the port alone can be open a moment earlier.
      if (!/Server is ready/.test(log())) return false;
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    },
    () => `nats-server to start on ${port}:\n${log()}`,
    30_000,
    25,
  );
}

/** Starts a nats-server with `-js -sd <tmp>` on a free port; `args` are added (e.g. `['--auth', token]`). */
export async function startNatsServer(options: { args?: string[] } = {}): Promise<NatsServer> {
  const storeDir = await mkdtemp(path.join(os.tmpdir(), 'wm-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = '';
  const launch = async (): Promise<void> => {
    output = '';
    const c = spawn(BINARY, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child = c;
    await waitForPort(port, c, () => output);
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    // A server that does not stop on SIGTERM is killed; a loaded machine can take seconds to get there.
    const timer = setTimeout(() => c.kill('SIGKILL'), budget(20_000));
    await exited;
    clearTimeout(timer);
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    dispose: async () => {
      await stop();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}
