import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

// The host runs as a real process; a fixture credentials store blocks forever at one rotation step (after its change
// is on disk, for create/promote/revoke) and touches a marker. The test SIGKILLs the host there, restarts it without
// the fault, and checks that the rotation was finished or rolled back and that no version is left pending.

interface StoredVersion {
  version: string;
  status: string;
  stages: string[];
}
interface JournalEntry {
  id: string;
  operation: string;
  state: string;
  step?: string;
  finishedAt?: string;
  error?: { code: string };
  rollbackOf?: string;
}

const STEPS = ['create', 'test', 'promote', 'distribute', 'revoke'] as const;
type Step = (typeof STEPS)[number];
/** Where each crash must end: rolled back before promotion, finished forward from promotion on. */
const OUTCOME: Record<Step, 'rolled back' | 'completed'> = { create: 'rolled back', test: 'rolled back', promote: 'completed', distribute: 'completed', revoke: 'completed' };

function config(dir: string, withPolicy: boolean): string {
  return `
host: { id: crash, stateDir: ${dir}/state }
secrets:
  rotation:
    defaultGracePeriodMs: 0
${withPolicy ? '    policies: [{ secret: api, interval: 1d }]' : ''}
plugins:
  - name: credentials-faulty
    package: ${repoRoot}test/fixtures/plugins/credentials-faulty
    limits: { threads: 1 }
instances:
  - name: vault
    plugin: credentials-faulty
    config: { controlFile: ${dir}/faults.json }
`;
}

/** Starts `wm serve`; resolves once it printed its start line (start() and the journal recovery are done). */
async function serve(t: TestContext, file: string, waitStarted: boolean): Promise<ChildProcess & { output: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'host/src/cli/main.ts'), 'serve', '--config', file], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const proc = Object.assign(child, { output: () => out });
  // A host start compiles TypeScript and loads a plugin thread: 30 s and more on a loaded machine.
  if (waitStarted) await waitFor(() => out.includes("host 'crash' started") || child.exitCode !== null, () => `the host to start; output:\n${out}`, 90_000);
  assert.equal(child.exitCode, null, `host exited early:\n${out}`);
  return proc;
}

/** Resolves once the child exited and its output is all read ('close', not 'exit', which can come before the last output). */
async function exited(child: ChildProcess & { output: () => string }, what: string): Promise<void> {
  if ((child.exitCode !== null || child.signalCode !== null) && child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) return;
  await within(new Promise((resolve) => child.once('close', resolve)), () => `${what}; output:\n${child.output()}`, 60_000);
}

// Each step has its own folder, so two run side by side (each boots two hosts one after the other).
describe('rotation survives a host killed at every step', { concurrency: 2 }, () => {
  for (const step of STEPS) {
    it(`SIGKILL at '${step}': after restart the rotation is ${OUTCOME[step]} and no version is pending`, { timeout: budget(240_000) }, async (t) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-rotation-crash-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const storeDir = path.join(dir, 'state', 'instances', 'vault');
      const store = path.join(storeDir, 'faulty-store.json');
      await mkdir(storeDir, { recursive: true });
      await writeFile(store, JSON.stringify({ secrets: { api: { next: 2, versions: [{ version: '1', status: 'active', stages: ['current'], createdAt: '2020-01-01T00:00:00.000Z', value: 'v1' }] } } }));
      const marker = path.join(dir, 'marker');
      await writeFile(path.join(dir, 'faults.json'), JSON.stringify({ blockAt: step, marker }));
      const first = path.join(dir, 'first.yaml');
      await writeFile(first, config(dir, true));

      // First run: the version is years old, so the daily policy is due at once; the store blocks at the step.
      const host = await serve(t, first, false);
      // The host starts (seconds, far more under load), then the due rotation reaches the step.
      await waitFor(() => existsSync(marker) || host.exitCode !== null, () => `the store to block at '${step}'; output:\n${host.output()}`, 90_000);
      assert.equal(host.exitCode, null, host.output());
      host.kill('SIGKILL');
      await exited(host, 'the killed host to end');
      const journalFile = path.join(dir, 'state', 'rotation', 'journal.json');
      const crashed = (JSON.parse(await readFile(journalFile, 'utf8')) as { entries: JournalEntry[] }).entries;
      assert.equal(crashed.length, 1);
      assert.equal(crashed[0]?.step, step, `journal written before the step: ${JSON.stringify(crashed)}`);

      // Second run: no fault, no policy.
      await unlink(path.join(dir, 'faults.json'));
      const second = path.join(dir, 'second.yaml');
      await writeFile(second, config(dir, false));
      const again = await serve(t, second, true);

      // start() has resolved: nothing may be pending now.
      const versions = (): StoredVersion[] => (JSON.parse(readFileSync(store, 'utf8')) as { secrets: { api: { versions: StoredVersion[] } } }).secrets.api.versions;
      assert.deepEqual(versions().filter((v) => v.status === 'pending'), [], JSON.stringify(versions()));
      const journal = await waitFor(async () => {
        const entries = (JSON.parse(await readFile(journalFile, 'utf8')) as { entries: JournalEntry[] }).entries;
        return entries.every((e) => e.finishedAt !== undefined) && entries;
      }, () => `every journal entry to finish; output:\n${again.output()}`, 30_000);

      const rotation = journal.find((e) => e.operation === 'rotate');
      assert.ok(rotation !== undefined);
      const status = Object.fromEntries(versions().map((v) => [v.version, v.status]));
      if (OUTCOME[step] === 'rolled back') {
        assert.equal(rotation.state, 'failed');
        assert.equal(rotation.error?.code, 'HOST_ERR_ROTATION_INTERRUPTED');
        const rb = journal.find((e) => e.rollbackOf === rotation.id);
        assert.equal(rb?.state, 'completed', JSON.stringify(journal));
        // The old version is current; the new one, if it was created, is revoked.
        assert.equal(status['1'], 'active');
        assert.ok(status['2'] === undefined || status['2'] === 'revoked', JSON.stringify(status));
      } else {
        assert.equal(rotation.state, 'completed', JSON.stringify(journal));
        assert.equal(journal.length, 1, 'no rollback');
        assert.deepEqual(status, { 1: 'revoked', 2: 'active' });
      }

      again.kill('SIGTERM');
      await exited(again, 'the second host to stop on SIGTERM');
      assert.equal(again.exitCode, 0, `signal ${again.signalCode ?? 'none'}; output:\n${again.output()}`);
    });
  }
});
