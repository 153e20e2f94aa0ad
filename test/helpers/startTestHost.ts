import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { EventEnvelope } from '../../host/src/bus/EventEnvelope.ts';
import { parseConfig } from '../../host/src/config/loadConfig.ts';
import { Host } from '../../host/src/Host.ts';
import type { ReportRow } from '../../host/src/plugins/PluginRegistry.ts';
import type { WorkerStore } from '../../host/src/workers/ledger/WorkerStore.ts';
import { killProcessWorkers } from './processWorkers.ts';
import { budget } from './waitFor.ts';

/** Absolute path of the repository root. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * YAML `plugins` and `instances` for the process provider with one default instance, the setup most host tests start
 * from. Append it to a `host:` (and `api:`/`security:`) block. `config` is the instance config as a YAML flow mapping.
 */
export const processProviderYaml = (instance = 'a', config?: string): string => `
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: ${instance}, plugin: process, default: true${config === undefined ? '' : `, config: ${config}`} }
`;

/** Absolute path of a fixture plugin. */
export const fixturePlugin = (name: string): string => path.join(repoRoot, 'test', 'fixtures', 'plugins', name);

/** A host booted from a YAML string in a temporary folder, with every event and log line it produced. */
export interface TestHost {
  host: Host;
  report: ReportRow[];
  dir: string;
  events: EventEnvelope[];
  /** Raw JSON log lines the host wrote. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * Boots a real host (real registry, real sandboxes, memory bus) for integration tests, in the spirit of Backstage's
 * startTestBackend. `${DIR}` in the YAML is replaced by the temporary folder; paths may be absolute.
 */
export async function startTestHost(
  yaml: string,
  options: { env?: NodeJS.ProcessEnv; beforeStart?: (dir: string) => Promise<void>; workerStore?: WorkerStore } = {},
): Promise<TestHost> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-host-'));
  const file = path.join(dir, 'wm.yaml');
  const text = yaml.replaceAll('${DIR}', dir);
  await writeFile(file, text);
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
      done();
    },
  });
  const loaded = parseConfig(text, file, { env: options.env ?? { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  const logger = pino({ level: 'debug', base: { hostId: loaded.config.host.id ?? 'test' } }, sink);
  await options.beforeStart?.(dir);
  const host = new Host({ loaded, logger, ...(options.workerStore === undefined ? {} : { workerStore: options.workerStore }) });
  const events: EventEnvelope[] = [];
  host.bus.subscribe(`${loaded.config.bus.subjectPrefix}.>`, (e) => void events.push(e));
  let report: ReportRow[];
  try {
    report = await host.start();
  } catch (error) {
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    throw error;
  }
  return {
    host,
    report,
    dir,
    events,
    logs,
    async stop() {
      // Generous: a healthy plugin's close() can take seconds on a loaded machine, and a stop that runs out of time
      // cuts it short. It only waits this long for work still in flight.
      await host.stop({ timeoutMs: budget(30_000) });
      // Process workers outlive their host by design; none of a test's may outlive the test.
      await Promise.all(host.registry.instances().map((i) => (i.stateDir === undefined ? undefined : killProcessWorkers(i.stateDir))));
      await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    },
  };
}
