import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { CredentialProviderContract, WorkerManagerError, WorkerProviderContract, type WorkerEvent } from '@worker-manager/plugin-sdk';
import type { Static } from 'typebox';
import type { PluginLimits } from '../../../host/src/config/schema.ts';
import { PluginSandbox, type SandboxOptions, type SandboxState, type SandboxStatusChange } from '../../../host/src/sandbox/index.ts';
import { ProcessSandbox } from '../../../host/src/sandbox/process/ProcessSandbox.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';

/** Absolute folder of a fixture plugin package. */
export function fixtureDir(name: string): string {
  return fileURLToPath(new URL(`../../fixtures/plugins/${name}`, import.meta.url));
}

/**
 * Limits for sandbox tests: short restart backoff and frequent heartbeats keep fault tests fast, while the deadlines
 * a healthy thread could miss on a loaded machine (start-up, calls, heartbeats) stay generous. A test that checks a
 * deadline sets that one deadline short and leaves the rest.
 */
export function testLimits(overrides: Partial<Static<typeof PluginLimits>> = {}): Static<typeof PluginLimits> {
  return {
    threads: 1,
    concurrentCallsPerThread: 16,
    heapMb: 48,
    callTimeoutMs: budget(10_000),
    startTimeoutMs: budget(60_000),
    heartbeatMs: 50,
    // A healthy thread can miss heartbeats for seconds when the machine is loaded; the hang tests set their own.
    hangTimeoutMs: budget(10_000),
    restart: { maxRestarts: 3, windowMs: 60_000, backoffMs: 20, maxBackoffMs: 200 },
    ...overrides,
  };
}

const PROVIDER_METHODS = Object.keys(WorkerProviderContract.operations);

/** What the tests use of a sandbox: the shell both tiers share (an in-process PluginSandbox, an out-of-process ProcessSandbox). */
export type TestSandbox = Pick<PluginSandbox, 'start' | 'stop' | 'proxy' | 'stats' | 'call' | 'stream' | 'quarantine'> & { readonly state: SandboxState };

/**
 * Where a tier-agnostic test runs its plugin: `thread`, in the host's process (trusted); `process`, the restricted tier
 * out of process (bubblewrap). Tests that hold for both loop over {@link TIERS}.
 */
export type Tier = 'thread' | 'process';
export const TIERS: readonly Tier[] = ['thread', 'process'];

/** What a test sandbox recorded through its callbacks. */
export interface SandboxRecord<S extends TestSandbox = PluginSandbox> {
  sandbox: S;
  plugin: string;
  statuses: SandboxStatusChange[];
  events: WorkerEvent[];
  logs: Array<{ level: string; message: string; fields: Record<string, unknown> | undefined }>;
  stateDir: string;
}

/** Options a test may change; the rest come from the fixture's folder. */
export type HarnessOptions = Partial<Omit<SandboxOptions, 'limits'>> & { limits?: Partial<Static<typeof PluginLimits>> };

/**
 * A sandbox over a fixture plugin, stopped (and its state dir removed) when the test ends. Not started: tests
 * that check start() call it themselves.
 */
export async function fixtureSandbox(t: { after(fn: () => unknown): void }, fixture: string, overrides: HarnessOptions = {}): Promise<SandboxRecord> {
  return harness(t, fixture, 'trusted', (options) => new PluginSandbox(options), overrides);
}

/** What an out-of-process test sandbox recorded through its callbacks. */
export type ProcessSandboxRecord = Omit<SandboxRecord, 'sandbox'> & { sandbox: ProcessSandbox };

/**
 * A restricted sandbox over a fixture plugin, out of process (bubblewrap), stopped when the test ends. Not started.
 */
export async function fixtureProcessSandbox(t: { after(fn: () => unknown): void }, fixture: string, overrides: HarnessOptions = {}): Promise<ProcessSandboxRecord> {
  return harness(t, fixture, 'restricted', (options) => new ProcessSandbox(options), overrides);
}

async function harness<S extends { stop(options?: { timeoutMs?: number }): Promise<void> }>(
  t: { after(fn: () => unknown): void },
  fixture: string,
  isolation: 'trusted' | 'restricted',
  build: (options: SandboxOptions) => S,
  overrides: HarnessOptions,
): Promise<Omit<SandboxRecord, 'sandbox'> & { sandbox: S }> {
  const stateDir = await mkdtemp(join(tmpdir(), `wm-sandbox-test-${fixture}-`));
  const statuses: SandboxStatusChange[] = [];
  const events: WorkerEvent[] = [];
  const logs: SandboxRecord['logs'] = [];
  const dir = fixtureDir(fixture);
  const { limits, ...rest } = overrides;
  const sandbox = build({
    pluginId: fixture,
    pluginVersion: '1.0.0',
    kind: 'provider',
    instance: `${fixture}-test`,
    hostId: 'test-host',
    entry: join(dir, 'index.ts'),
    packageDir: dir,
    config: {},
    stateDir: join(stateDir, 'state'),
    isolation,
    env: {},
    methods: PROVIDER_METHODS,
    contract: WorkerProviderContract,
    onStatus: (change) => statuses.push(change),
    onEvent: (event) => events.push(event),
    onLog: (level, message, fields) => logs.push({ level, message, fields }),
    ...rest,
    limits: testLimits(limits),
  });
  t.after(async () => {
    await sandbox.stop({ timeoutMs: 0 });
    await rm(stateDir, { recursive: true, force: true });
  });
  return { sandbox, plugin: fixture, statuses, events, logs, stateDir };
}

/** A started sandbox over a fixture plugin. */
export async function startedSandbox(t: { after(fn: () => unknown): void }, fixture: string, overrides: HarnessOptions = {}): Promise<SandboxRecord> {
  const record = await fixtureSandbox(t, fixture, overrides);
  await record.sandbox.start();
  return record;
}

/** A started sandbox over a fixture plugin in the given tier. */
export async function startedIn(tier: Tier, t: { after(fn: () => unknown): void }, fixture: string, overrides: HarnessOptions = {}): Promise<SandboxRecord<TestSandbox>> {
  const record: SandboxRecord<TestSandbox> = tier === 'thread' ? await fixtureSandbox(t, fixture, overrides) : await fixtureProcessSandbox(t, fixture, overrides);
  await record.sandbox.start();
  return record;
}

export { CredentialProviderContract, WorkerProviderContract };

export { waitFor };

/** The coded error a promise rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<WorkerManagerError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WorkerManagerError, `expected a WorkerManagerError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to reject');
}
