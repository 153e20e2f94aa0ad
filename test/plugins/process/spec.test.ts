import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isWorkerManagerError, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import { checkSpec } from '../../../plugins/process/src/checkSpec.ts';
import { finalState, logText, openHarness, tempStateDir, waitFor } from './helpers.ts';

const code = (c: string) => (e: unknown): boolean => {
  assert.ok(isWorkerManagerError(e), String(e));
  assert.equal(e.code, c, e.message);
  return true;
};

describe('process plugin: what a spec may ask for', () => {
  it('refuses specs it cannot run: no command is WM_ERR_VALIDATION, container features are WM_ERR_COMPATIBILITY', async (t) => {
    const h = await openHarness(t);
    await assert.rejects(h.proxy.createWorker({ workerId: 'nocmd', spec: {} }), code('WM_ERR_VALIDATION'));
    // The host (and the harness) refuse these first, since the plugin does not declare the capabilities...
    for (const spec of [{ image: 'busybox', command: ['true'] }, { command: ['true'], ports: [{ containerPort: 80 }] }, { command: ['true'], resources: { cpuMillicores: 500 } }] satisfies RuntimeSpec[]) {
      await assert.rejects(h.proxy.createWorker({ workerId: 'container', spec }), code('WM_ERR_COMPATIBILITY'));
    }
    // ...and the plugin refuses them itself, for a host that would not.
    const cases: Array<[RuntimeSpec, string]> = [
      [{ image: 'busybox', command: ['true'] }, 'image'],
      [{ command: ['true'], volumes: [{ mountPath: '/data', source: { type: 'EmptyDir' } }] }, 'volumes'],
      [{ command: ['true'], user: 'nobody' }, 'user'],
      [{ command: ['true'], readOnlyRootFilesystem: true }, 'readOnlyRootFilesystem'],
      [{ command: ['true'], resources: { gpu: 1 } }, 'resources.gpu'],
      [{ command: ['true'], network: { type: 'Isolated', isolation: 'Complete' } }, 'network.isolation Complete'],
      [{ command: ['true'], healthCheck: { type: 'tcp', port: 80 } }, 'healthCheck'],
    ];
    for (const [spec, feature] of cases) {
      assert.throws(() => checkSpec(spec, []), (e: unknown) => code('WM_ERR_COMPATIBILITY')(e) && isWorkerManagerError(e) && (e.details?.['unsupported'] as string[]).includes(feature));
    }
    assert.throws(() => checkSpec({ command: ['true'], workingDir: '/etc' }, []), code('WM_ERR_VALIDATION'));
    assert.throws(() => checkSpec({ command: ['true'], workingDir: 'a/../../b' }, []), code('WM_ERR_VALIDATION'));
    assert.deepEqual(checkSpec({ command: ['echo'], args: ['a', 'b'], workingDir: './src/x', resources: { memoryMiB: 8, storageMiB: 5 } }, []), {
      argv: ['echo', 'a', 'b'],
      workingDir: 'src/x',
      memoryKiB: 8192,
    });
  });

  it('gives the worker spec.env, the passEnv variables, WM_WORKER_ID and nothing else of the plugin environment', async (t) => {
    process.env['WM_TEST_PASSED'] = 'passed-through';
    process.env['WM_TEST_HIDDEN'] = 'not-for-workers';
    t.after(() => {
      delete process.env['WM_TEST_PASSED'];
      delete process.env['WM_TEST_HIDDEN'];
    });
    const h = await openHarness(t, { passEnv: ['PATH', 'WM_TEST_PASSED'] });
    await h.proxy.createWorker({ workerId: 'envy', spec: { command: ['env'], env: { GREETING: 'hi', PATH: '/usr/bin:/bin' } } });
    await finalState(h, 'envy');
    const vars = Object.fromEntries((await logText(h, 'envy')).trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    delete vars['PWD']; // set by the shell
    assert.deepEqual(vars, { GREETING: 'hi', PATH: '/usr/bin:/bin', WM_TEST_PASSED: 'passed-through', WM_WORKER_ID: 'envy' });
  });

  it('runs in spec.workingDir under the worker folder, args appended to the command', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'cwd', spec: { command: ['sh', '-c', 'pwd; echo "$@"', 'sh'], args: ['one', 'two'], workingDir: 'build/out' } });
    await finalState(h, 'cwd');
    assert.equal(await logText(h, 'cwd'), `${path.join(h.stateDir, 'workers', 'cwd', 'work', 'build', 'out')}\none two\n`);
  });

  it('enforces maxWorkers and refuses quotas larger than the machine with WM_ERR_RESOURCE_EXHAUSTED', async (t) => {
    const h = await openHarness(t, { maxWorkers: 1 });
    await h.proxy.createWorker({ workerId: 'only', spec: { command: ['sleep', '600'] } });
    await assert.rejects(h.proxy.createWorker({ workerId: 'second', spec: { command: ['sleep', '600'] } }), code('WM_ERR_RESOURCE_EXHAUSTED'));
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'second' }), code('WM_ERR_NOT_FOUND'));
    await h.proxy.terminateWorker({ workerId: 'only' });
    const capacity = await h.proxy.getCapacity({});
    await assert.rejects(
      h.proxy.createWorker({ workerId: 'huge', spec: { command: ['true'], resources: { memoryMiB: capacity.total.memoryMiB + 1 } } }),
      (e: unknown) => code('WM_ERR_RESOURCE_EXHAUSTED')(e) && isWorkerManagerError(e) && JSON.stringify(e.details).includes('memoryMiB'),
    );
    await h.proxy.createWorker({ workerId: 'fits', spec: { command: ['true'] } });
  });

  it('executeCommand: caps output, refuses a paused or ended worker with WM_ERR_CONFLICT', async (t) => {
    const h = await openHarness(t, { maxExecOutputBytes: 1_024 });
    await h.proxy.createWorker({ workerId: 'exec', spec: { command: ['sleep', '600'] } });
    const big = await h.proxy.executeCommand({ workerId: 'exec', command: ['sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" x; echo tail >&2'] });
    assert.equal(big.stdout.length, 1_024);
    assert.equal(big.truncated, true);
    assert.equal(big.stderr, 'tail\n');
    const small = await h.proxy.executeCommand({ workerId: 'exec', command: ['pwd'] });
    assert.equal(small.stdout, `${path.join(h.stateDir, 'workers', 'exec', 'work')}\n`);
    assert.equal(small.truncated, undefined);
    await h.proxy.pauseWorker({ workerId: 'exec' });
    await assert.rejects(h.proxy.executeCommand({ workerId: 'exec', command: ['true'] }), code('WM_ERR_CONFLICT'));
    await h.proxy.terminateWorker({ workerId: 'exec' });
    await assert.rejects(h.proxy.executeCommand({ workerId: 'exec', command: ['true'] }), code('WM_ERR_CONFLICT'));
    await assert.rejects(h.proxy.pauseWorker({ workerId: 'exec' }), code('WM_ERR_CONFLICT'));
  });

  it('keeps the folder (logs, status) of a terminated worker, and removes it after retainFinishedMs', async (t) => {
    const stateDir = await tempStateDir(t);
    const first = await openHarness(t, {}, stateDir);
    await first.proxy.createWorker({ workerId: 'old', spec: { command: ['sh', '-c', 'echo kept'] } });
    await finalState(first, 'old');
    await first.proxy.terminateWorker({ workerId: 'old' });
    assert.equal(await logText(first, 'old'), 'kept\n');
    assert.deepEqual(await first.proxy.getWorkerStatus({ workerId: 'old' }), { phase: 'Terminated', exitCode: 0 });
    await first.close();
    // Not a wait for an event: a folder is collected once it finished strictly more than retainFinishedMs (0) ago,
    // so some time must have passed. Load only lengthens it.
    await sleep(20);
    const second = await openHarness(t, { retainFinishedMs: 0 }, stateDir);
    await waitFor(async () => ((await second.proxy.listWorkers({})).length === 0 ? true : undefined), 'garbage collection');
    await assert.rejects(access(path.join(stateDir, 'workers', 'old')), { code: 'ENOENT' });
  });

  it('records meta.json with pid, start time and owner labels', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'meta', spec: { command: ['sleep', '600'], labels: { team: 'ci' } } });
    const meta = JSON.parse(await readFile(path.join(h.stateDir, 'workers', 'meta', 'meta.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(meta['pid'], Number(w.providerRef));
    assert.match(String(meta['startTime']), /^\d+$/);
    assert.deepEqual(meta['owner'], h.owner);
    assert.deepEqual(w.labels, { team: 'ci', ...h.owner });
    await h.proxy.terminateWorker({ workerId: 'meta' });
  });
});
