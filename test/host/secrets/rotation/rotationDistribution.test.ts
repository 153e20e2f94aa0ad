import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../../helpers/waitFor.ts';
import { rotationDir, startRotationHost } from './rotationHost.ts';

// The restart window: all three rotations must reach distribution within it, which takes seconds on a loaded machine.
const DEBOUNCE_MS = budget(4_000);
const sha16 = (value: unknown): string => createHash('sha256').update(String(value)).digest('hex').slice(0, 16);
const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l.length > 0);

// Workers that report what they hold as a short hash, never the value itself.
const ENV_WORKER = (starts: string): string[] => ['sh', '-c', `printf '%s\\n' "$(printf %s "$DB_PASSWORD" | sha256sum | cut -c1-16)" >> ${starts}; exec sleep 600`];
// It writes `<hups>.ready` once its trap is set: a SIGHUP before that would kill the shell (default action).
const SIGNAL_WORKER = (hups: string): string[] => ['sh', '-c', `trap 'echo "$(sha256sum < "$WM_SECRETS_DIR/db" | cut -c1-16)" >> ${hups}' HUP; : > ${hups}.ready; while :; do sleep 0.05; done`];

describe('RotationEngine distribution to real process workers', () => {
  it('file consumers are refreshed in place, signal consumers signalled, env consumers restarted once for 3 rotations within the debounce window, none left alone', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, `
secrets:
  rotation:
    debounceMs: ${DEBOUNCE_MS}
    defaultGracePeriodMs: 60000
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyFile: \${DIR}/key, scrypt: { cost: 1024 } }
  - { name: proc, plugin: process, default: true }
`);
    t.after(() => h.stop());
    const first = await h.creds().putSecret({ name: 'db', value: 'db-value-0-d41d8cd98f' });
    assert.equal(first.version, '1');
    const starts = path.join(dir, 'starts-env');
    const startsNone = path.join(dir, 'starts-none');
    const hups = path.join(dir, 'hups');
    const create = (workerId: string, command: string[], ref: Record<string, unknown>) =>
      h.host.workers.createWorker({ workerId, spec: { command, secretRefs: [{ name: 'db', ...ref } as never] } });
    await create('env-w', ENV_WORKER(starts), { mount: 'env', envName: 'DB_PASSWORD' });
    await create('none-w', ENV_WORKER(startsNone), { mount: 'env', envName: 'DB_PASSWORD', onRotation: 'none' });
    await create('file-w', ['sleep', '600'], { mount: 'file', path: 'db' });
    await create('sig-w', SIGNAL_WORKER(hups), { mount: 'file', path: 'db', onRotation: 'signal', signal: 'SIGHUP' });
    await waitFor(async () => (await lines(starts)).length === 1 && (await lines(startsNone)).length === 1, 'env workers to start');
    await waitFor(() => existsSync(`${hups}.ready`), 'the signal worker to set its trap');
    const v1 = sha16((await h.creds().getSecret({ name: 'db' })).value);
    assert.deepEqual(await lines(starts), [v1]);

    const started = Date.now();
    const records = await Promise.all([1, 2, 3].map(() => h.host.rotation.rotate({ name: 'db', requester: 'alice' })));
    const elapsed = Date.now() - started;
    assert.deepEqual(records.map((r) => [r.state, r.step, r.previousVersion, r.newVersion]).sort(), [
      ['in_progress', 'grace', '1', '2'], ['in_progress', 'grace', '2', '3'], ['in_progress', 'grace', '3', '4'],
    ]);
    for (const r of records) assert.deepEqual([...r.workers].sort(), ['env-w', 'file-w', 'sig-w']);
    // Each rotation waited for the coalesced restart before starting its grace period.
    assert.ok(elapsed >= DEBOUNCE_MS - 100, `rotations resolved after ${elapsed} ms`);

    const newest = await h.creds().getSecret({ name: 'db' });
    assert.equal(newest.version, '4');
    const v4 = sha16(newest.value);

    // One restart for three rotations, and it carried the newest version.
    assert.equal(h.host.rotation.restartCount, 1);
    // The restart returns once the new process runs; its shell writes the start line a moment later.
    await waitFor(async () => (await lines(starts)).length >= 2, 'the restarted env worker to record its start');
    assert.deepEqual(await lines(starts), [v1, v4]);
    const envNow = await h.host.workers.executeCommand('env-w', ['sh', '-c', 'printf %s "$DB_PASSWORD" | sha256sum | cut -c1-16']);
    assert.equal(envNow.stdout.trim(), v4);
    // onRotation none: never restarted, still on the first value.
    assert.deepEqual(await lines(startsNone), [v1]);

    // File consumers hold the newest file; the signal consumer is signalled after its file is replaced.
    const fileNow = await h.host.workers.executeCommand('file-w', ['sh', '-c', 'sha256sum < "$WM_SECRETS_DIR/db" | cut -c1-16']);
    assert.equal(fileNow.stdout.trim(), v4);
    // Signals are not queued: SIGHUPs sent a few ms apart may arrive as one. The last one always follows the newest file.
    const seen = await waitFor(async () => {
      const l = await lines(hups);
      return l.at(-1) === v4 && l;
    }, 'a SIGHUP handled with the newest file');
    assert.ok(seen.length >= 1 && seen.length <= 3, JSON.stringify(seen));
    assert.equal(seen.at(-1), v4);

    // Names and versions only in what the host emitted about it.
    const emitted = JSON.stringify([h.events, h.audit.entries, h.logs]);
    assert.equal(emitted.includes(String(newest.value)), false);
    assert.ok(h.audit.entries.some((e) => e.kind === 'secret.rotation' && (e.details?.['workers'] as string[] | undefined)?.includes('env-w')));
  });
});
