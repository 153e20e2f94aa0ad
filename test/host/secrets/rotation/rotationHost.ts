import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { CredentialProviderContract, Proxied } from '@worker-manager/plugin-sdk';
import pino from 'pino';
import type { EventBus } from '../../../../host/src/bus/EventBus.ts';
import type { EventEnvelope } from '../../../../host/src/bus/EventEnvelope.ts';
import { parseConfig } from '../../../../host/src/config/loadConfig.ts';
import { Host } from '../../../../host/src/Host.ts';
import type { AuditEntry, AuditSink } from '../../../../host/src/security/audit/AuditSink.ts';
import { repoRoot } from '../../../helpers/startTestHost.ts';
import { budget } from '../../../helpers/waitFor.ts';

/** An AuditSink that keeps what it is given, in order (the hash-chained log is the audit owner's to test). */
export class MemoryAudit implements AuditSink {
  readonly entries: AuditEntry[] = [];
  async record(entry: AuditEntry): Promise<void> {
    this.entries.push(structuredClone(entry));
  }
}

/** A real host (real registry, sandboxes, memory bus) over a folder that outlives it, so a second host can resume. */
export interface RotationHost {
  host: Host;
  dir: string;
  events: EventEnvelope[];
  logs: string[];
  audit: MemoryAudit;
  creds(instance?: string): Proxied<CredentialProviderContract>;
  stop(): Promise<void>;
}

/** Hosts started on each test folder: their workers terminated and the hosts stopped before the folder goes. */
const hostsOf = new Map<string, Host[]>();

/**
 * A temporary folder for one test, removed at the end. node:test runs `after` hooks in registration order, so this
 * one (registered first) cleans the folder's hosts up itself: removing the folder under running workers races their writes.
 */
export async function rotationDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-rotation-'));
  hostsOf.set(dir, []);
  t.after(async () => {
    for (const host of hostsOf.get(dir) ?? []) {
      // Workers outlive a stopped host by design; a test's workers must not outlive the test.
      const workers = await host.workers.listWorkers().catch(() => []);
      for (const { worker } of workers) await host.workers.terminateWorker(worker.workerId, { gracePeriodMs: 0 }).catch(() => undefined);
      await host.stop({ timeoutMs: budget(30_000) }).catch(() => undefined);
    }
    hostsOf.delete(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  });
  return dir;
}

/** The credentials-simple plugin entry and an instance `vault` keyed from `<dir>/key`. */
export function simpleCredentials(): string {
  return `
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyFile: \${DIR}/key, scrypt: { cost: 1024 } }
`;
}

/** The faulty fixture store as instance `vault`, steered by `<dir>/faults.json`. */
export function faultyCredentials(): string {
  return `
plugins:
  - name: credentials-faulty
    package: ${repoRoot}test/fixtures/plugins/credentials-faulty
    limits: { threads: 1 }
instances:
  - name: vault
    plugin: credentials-faulty
    config: { controlFile: \${DIR}/faults.json }
`;
}

/**
 * The embedded store with faults injected around it (test/fixtures/plugins/credentials-simple-faulty) as instance
 * `vault`, keyed from `<dir>/key` and steered by `<dir>/faults.json`; with `processProvider`, also the process
 * provider as the default instance `proc`, for workers that consume the secret.
 */
export function simpleFaultyCredentials(options: { processProvider?: boolean } = {}): string {
  const withProcess = options.processProvider === true;
  return `
plugins:
  - name: credentials-simple-faulty
    package: ${repoRoot}test/fixtures/plugins/credentials-simple-faulty
    limits: { threads: 1 }
${withProcess ? `  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
` : ''}instances:
  - name: vault
    plugin: credentials-simple-faulty
    config: { controlFile: \${DIR}/faults.json, store: { keyFile: \${DIR}/key, scrypt: { cost: 1024 } } }
${withProcess ? '  - { name: proc, plugin: process, default: true }\n' : ''}`;
}

/** Boots a host from YAML (`${DIR}` is `dir`); the caller stops it (t.after). */
export async function startRotationHost(dir: string, yaml: string, options: { bus?: EventBus } = {}): Promise<RotationHost> {
  await writeFile(path.join(dir, 'key'), 'rotation-test-key-material-0123456789\n', { mode: 0o600 });
  const text = `host: { id: rot, stateDir: \${DIR}/state }\n${yaml}`.replaceAll('${DIR}', dir);
  const file = path.join(dir, 'wm.yaml');
  await writeFile(file, text);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      done();
    },
  });
  const loaded = parseConfig(text, file, { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  const audit = new MemoryAudit();
  const host = new Host({ loaded, logger: pino({ level: 'debug' }, sink), audit, ...(options.bus === undefined ? {} : { bus: options.bus }) });
  hostsOf.get(dir)?.push(host);
  const events: EventEnvelope[] = [];
  host.bus.subscribe(`${loaded.config.bus.subjectPrefix}.>`, (e) => void events.push(e));
  await host.start();
  return {
    host,
    dir,
    events,
    logs,
    audit,
    creds: (instance = 'vault') => host.registry.proxy<CredentialProviderContract>(instance, 'credentials'),
    // Generous: stopping returns as soon as nothing is in flight; a loaded machine must not cut a drain short.
    stop: () => host.stop({ timeoutMs: budget(30_000) }),
  };
}
