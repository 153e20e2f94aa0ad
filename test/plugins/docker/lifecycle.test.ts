import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { budget } from '../../helpers/waitFor.ts';
import { docker, eventBarrier, finalState, IMAGE, inspect, logText, longSpec, openHarness, ownedCounts, waitFor } from './helpers.ts';

const skip = await requireDocker();

const expectCode = (code: string) => (error: unknown): boolean => {
  assert.ok(isWorkerManagerError(error), `expected a WorkerManagerError, got ${String(error)}`);
  assert.equal(error.code, code, `${error.code}: ${error.message}`);
  return true;
};

describe('docker provider: lifecycle, resources and security', { skip, concurrency: true }, () => {
  it('maps resources to NanoCpus, Memory = MemorySwap and PidsLimit, and applies the security defaults', async (t) => {
    const h = await openHarness(t, { pidsLimit: 64, capAdd: ['NET_BIND_SERVICE'] });
    const w = await h.proxy.createWorker({
      workerId: 'res',
      spec: longSpec('res', { resources: { cpuMillicores: 250, memoryMiB: 48 }, user: '65534:65534', readOnlyRootFilesystem: true }),
    });
    const info = await inspect(w.providerRef);
    assert.equal(info.HostConfig.NanoCpus, 250_000_000);
    assert.equal(info.HostConfig.Memory, 48 * 1024 * 1024);
    assert.equal(info.HostConfig.MemorySwap, 48 * 1024 * 1024);
    assert.equal(info.HostConfig.PidsLimit, 64);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.deepEqual(info.HostConfig.CapAdd, ['NET_BIND_SERVICE']);
    assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.equal(info.Config.User, '65534:65534');
    const id = await h.proxy.executeCommand({ workerId: 'res', command: ['id', '-u'] });
    assert.equal(id.stdout.trim(), '65534', 'the command runs as the spec user');
    const write = await h.proxy.executeCommand({ workerId: 'res', command: ['touch', '/x'] });
    assert.notEqual(write.exitCode, 0, 'the root filesystem is read-only');
    const labels = info.Config.Labels;
    assert.equal(labels['worker-manager/host'], h.hostId);
    assert.equal(labels['worker-manager/instance'], 'test');
    assert.equal(labels['worker-manager/worker-id'], 'res');
    assert.match(labels['worker-manager/epoch'] ?? '', /^\d+$/);
  });

  it('an out-of-memory kill is Failed with reason OOMKilled, reported by status and by a WorkerFailed event', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({
      workerId: 'oom',
      // The pause before allocating is not slack: containerd arms its OOM notifier only after the task has started, and
      // a container that hits its limit in its first moments can lose the OOM event, so the engine itself reports a
      // plain exit 137 (containerd#8180; Kubernetes' OOM test waits the same way). Seen once in CI.
      spec: { image: IMAGE, command: ['sh', '-c', 'sleep 1; exec awk \'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }\''], resources: { memoryMiB: 16 } },
    });
    const state = await finalState(h, 'oom');
    assert.deepEqual(state, { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 });
    await waitFor(() => h.events.find((e) => e.workerId === 'oom' && e.type === 'WorkerFailed' && e.reason === 'OOMKilled'), 'WorkerFailed OOMKilled');
    const listed = await h.proxy.listWorkers({});
    assert.deepEqual(listed.find((w) => w.workerId === 'oom')?.state, state);
  });

  it('a container killed behind the plugin\'s back becomes Failed through the engine events', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'victim', spec: longSpec('victim') });
    await docker.getContainer(w.providerRef ?? '').kill({ signal: 'SIGKILL' });
    const event = await waitFor(() => h.events.find((e) => e.workerId === 'victim' && e.type === 'WorkerStateChanged' && e.newState.phase === 'Failed'), 'a state change to Failed');
    assert.deepEqual(event.type === 'WorkerStateChanged' && event.newState, { phase: 'Failed', reason: 'ExitCode137', exitCode: 137 });
    assert.ok(h.events.some((e) => e.workerId === 'victim' && e.type === 'WorkerFailed'));
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: 'victim' }), { phase: 'Failed', reason: 'ExitCode137', exitCode: 137 });
    const r = await h.proxy.terminateWorker({ workerId: 'victim' });
    assert.equal(r.alreadyGone, true, 'terminating a worker that already ended removes it and says so');
    assert.equal(h.events.filter((e) => e.workerId === 'victim' && e.type === 'WorkerTerminated').length, 0, 'no WorkerTerminated for a failed worker');
  });

  it('terminate stops with the grace period, removes the container, and a terminate of a gone worker succeeds', async (t) => {
    const h = await openHarness(t);
    // A command that ignores SIGTERM: only the grace period's SIGKILL ends it.
    const w = await h.proxy.createWorker({ workerId: 'stubborn', spec: { image: IMAGE, command: ['sh', '-c', "trap '' TERM; while true; do sleep 0.1; done"] } });
    const started = Date.now();
    const r = await h.proxy.terminateWorker({ workerId: 'stubborn', gracePeriodMs: 1_000 });
    const took = Date.now() - started;
    assert.deepEqual(r, { workerId: 'stubborn', state: { phase: 'Terminated', exitCode: 137 }, alreadyGone: false });
    // The state above proves the SIGKILL; the upper bound only tells a terminate that hangs from one load slowed.
    assert.ok(took >= 900 && took < budget(30_000), `waited the grace period (${took} ms)`);
    await assert.rejects(inspect(w.providerRef), /no such container/i);
    assert.deepEqual(await h.proxy.terminateWorker({ workerId: 'stubborn' }), { workerId: 'stubborn', state: { phase: 'Terminated' }, alreadyGone: true });
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'stubborn' }), expectCode('WM_ERR_NOT_FOUND'));
    assert.deepEqual(await ownedCounts(h.hostId), { containers: 0, networks: 1, volumes: 0 }, 'only the instance network stays');
  });

  it('restart runs the container again; pause/exec conflict is WM_ERR_CONFLICT', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'again', spec: longSpec('again') });
    // Running means the container started, not that its shell has printed yet: on a loaded machine a restart at once
    // can stop the first run before its echo (seen in CI), and "twice" below would then never come.
    await waitFor(async () => ((await logText(h, 'again')).includes('again') ? true : undefined), 'the first run to print');
    const before = await inspect(w.providerRef);
    const restarted = await h.proxy.restartWorker({ workerId: 'again' });
    assert.equal(restarted.state.phase, 'Running');
    assert.equal(restarted.providerRef, w.providerRef, 'the same container');
    const after = await inspect(w.providerRef);
    assert.notEqual(after.State.StartedAt, before.State.StartedAt, 'it was started again');
    await waitFor(async () => ((await logText(h, 'again')).split('again').length - 1 === 2 ? true : undefined), 'the command to run twice');
    assert.equal(h.events.filter((e) => e.workerId === 'again' && e.type === 'WorkerFailed').length, 0, 'a restart is not a failure');

    assert.deepEqual(await h.proxy.pauseWorker({ workerId: 'again' }), { phase: 'Paused' });
    await assert.rejects(h.proxy.executeCommand({ workerId: 'again', command: ['true'] }), expectCode('WM_ERR_CONFLICT'));
    assert.deepEqual(await h.proxy.resumeWorker({ workerId: 'again' }), { phase: 'Running' });
    assert.equal((await h.proxy.executeCommand({ workerId: 'again', command: ['true'] })).exitCode, 0);
    const phases = (): string[] => h.events.flatMap((e) => (e.workerId === 'again' && e.type === 'WorkerStateChanged' ? [e.newState.phase] : []));
    await waitFor(() => (phases().join() === 'Paused,Running' ? true : undefined), `Paused then Running events (got ${phases().join()})`);
    // After the restart, a death behind the plugin's back is a failure again.
    await docker.getContainer(w.providerRef ?? '').kill({ signal: 'SIGKILL' });
    await waitFor(() => h.events.find((e) => e.workerId === 'again' && e.type === 'WorkerFailed'), 'WorkerFailed after the restart');
  });

  it('spec.timeoutMs stops the worker at its deadline: Failed{DeadlineExceeded}, on status and as one WorkerFailed', async (t) => {
    const h = await openHarness(t);
    const started = Date.now();
    await h.proxy.createWorker({ workerId: 'late', spec: longSpec('late', { timeoutMs: 800 }) });
    const state = await finalState(h, 'late');
    assert.deepEqual(state, { phase: 'Failed', reason: 'DeadlineExceeded', exitCode: 143 });
    assert.ok(Date.now() - started >= 800, 'not before the deadline');
    await waitFor(() => h.events.find((e) => e.workerId === 'late' && e.type === 'WorkerFailed' && e.reason === 'DeadlineExceeded'), 'WorkerFailed DeadlineExceeded');
    await eventBarrier(h, 'late-barrier');
    assert.equal(h.events.filter((e) => e.workerId === 'late' && e.type === 'WorkerFailed').length, 1, 'one WorkerFailed');
    assert.deepEqual(await h.proxy.terminateWorker({ workerId: 'late' }), { workerId: 'late', state, alreadyGone: true });
  });

  it('maps bad specs to WM_ERR_VALIDATION, a missing image to a coded pull error, and an absent engine to WM_ERR_NETWORK', async (t) => {
    const h = await openHarness(t);
    await assert.rejects(h.proxy.createWorker({ workerId: 'noimage', spec: { command: ['true'] } }), expectCode('WM_ERR_VALIDATION'));
    await assert.rejects(h.proxy.createWorker({ workerId: 'relwd', spec: longSpec('relwd', { workingDir: 'relative' }) }), expectCode('WM_ERR_VALIDATION'));
    // The engine's own 400 (an unknown capability) is WM_ERR_VALIDATION too.
    const badCaps = await openHarness(t, { capAdd: ['NOPE'] });
    await assert.rejects(badCaps.proxy.createWorker({ workerId: 'caps', spec: longSpec('caps') }), expectCode('WM_ERR_VALIDATION'));
    // A start the engine refuses (500: no such user) removes the container again.
    await assert.rejects(h.proxy.createWorker({ workerId: 'nouser', spec: longSpec('nouser', { user: 'nosuchuser' }) }), expectCode('WM_ERR_PROVIDER_SPECIFIC'));
    assert.equal((await ownedCounts(h.hostId)).containers, 0, 'a failed start leaves no container');
    // With the init process, a missing executable is the command's own failure (exit 127), not a failed create.
    await h.proxy.createWorker({ workerId: 'badexe', spec: { image: IMAGE, command: ['/no/such/binary'] } });
    assert.deepEqual(await finalState(h, 'badexe'), { phase: 'Failed', reason: 'ExitCode127', exitCode: 127 });
    // An image to pull is accepted at once; the pull's failure is the worker's state, not an error of the create.
    const accepted = await h.proxy.createWorker({ workerId: 'pull', spec: { image: 'registry.invalid/none/such:1', command: ['true'] } });
    assert.deepEqual(accepted.state, { phase: 'Starting', pendingReason: 'ImagePull' });
    assert.deepEqual(await finalState(h, 'pull'), { phase: 'Failed', reason: 'ImagePullFailed' });
    await waitFor(() => h.events.find((e) => e.workerId === 'pull' && e.type === 'WorkerFailed' && e.reason === 'ImagePullFailed'), 'WorkerFailed ImagePullFailed');
    const pullLog = h.logs.find((l) => l.fields?.['workerId'] === 'pull' && l.fields['reason'] === 'ImagePullFailed');
    assert.match(String(pullLog?.fields?.['message']), /registry\.invalid\/none\/such:1/, 'the failure names the image');
    const never = await openHarness(t, { imagePullPolicy: 'Never' });
    await assert.rejects(never.proxy.createWorker({ workerId: 'pull', spec: { image: 'local/absent:1', command: ['true'] } }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_PROVIDER_SPECIFIC' && e.details?.['reason'] === 'ImageNotPresent');
      return true;
    });
    const gone = await openHarness(t, { socketPath: '/tmp/wm-no-such-docker.sock', retry: { attempts: 2, backoffMs: 5 } });
    await assert.rejects(gone.proxy.getWorkerStatus({ workerId: 'any' }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e));
      assert.equal(e.code, 'WM_ERR_NETWORK');
      assert.equal(e.transient, true);
      assert.equal(e.details?.['attempts'], 2, 'it retried before giving up');
      return true;
    });
    await assert.rejects(h.proxy.createWorker({ workerId: 'gpu', spec: longSpec('gpu', { resources: { gpu: 1 } }) }), expectCode('WM_ERR_COMPATIBILITY'));
  });

  it('after a plugin restart (new thread, new state dir) listWorkers finds the workers again from their labels', async (t) => {
    const first = await openHarness(t);
    const w = await first.proxy.createWorker({ workerId: 'keep', spec: longSpec('keep', { labels: { team: 'ci' } }) });
    await first.close();
    const second = await openHarness(t, {}, { hostId: first.hostId });
    const listed = await second.proxy.listWorkers({ labels: { team: 'ci' } });
    assert.deepEqual(listed.map((x) => [x.workerId, x.state.phase, x.providerRef, x.createdAt]), [['keep', 'Running', w.providerRef, w.createdAt]]);
    assert.deepEqual(await second.proxy.createWorker({ workerId: 'keep', spec: longSpec('keep', { labels: { team: 'ci' } }) }), w, 'a repeated create after the restart returns the same worker');
    const other = await openHarness(t);
    assert.deepEqual(await other.proxy.listWorkers({}), [], 'another host id sees none of them');
    await assert.rejects(other.proxy.getWorkerStatus({ workerId: 'keep' }), expectCode('WM_ERR_NOT_FOUND'));
    assert.equal((await second.proxy.terminateWorker({ workerId: 'keep', gracePeriodMs: 0 })).alreadyGone, false);
  });

  it('registry credentials come as a secret, serve the pull only, and never appear in the worker or in errors', async (t) => {
    const h = await openHarness(t, { registryAuthSecret: 'registry' });
    const password = 'pw-REGISTRY-never-shown';
    const auth = { strategy: 'env' as const, name: 'registry', version: '1', envName: 'REGISTRY_AUTH', value: JSON.stringify({ username: 'ci', password, serveraddress: 'registry.invalid' }) };
    await h.proxy.createWorker({ workerId: 'priv', spec: { image: 'registry.invalid/private/app:1', command: ['true'] }, secrets: [auth] });
    assert.deepEqual(await finalState(h, 'priv'), { phase: 'Failed', reason: 'ImagePullFailed' });
    assert.ok(!JSON.stringify([h.events, h.logs, await h.proxy.listWorkers({})]).includes(password), 'no credential in events, logs or listings');
    const w = await h.proxy.createWorker({ workerId: 'local', spec: longSpec('local'), secrets: [auth] });
    const env = (await inspect(w.providerRef)).Config.Env ?? [];
    assert.ok(!env.some((e) => e.startsWith('REGISTRY_AUTH=') || e.includes(password)), 'the registry secret is not delivered to the worker');
    const bad = { ...auth, value: 'not-json-SECRETISH' };
    await assert.rejects(h.proxy.createWorker({ workerId: 'bad', spec: longSpec('bad'), secrets: [bad] }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_VALIDATION');
      assert.ok(!e.message.includes('SECRETISH'));
      return true;
    });
  });

  it('getLogs demultiplexes stdout and stderr with timestamps, and follow delivers later lines', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'talk', spec: { image: IMAGE, command: ['sh', '-c', 'echo out1; echo err1 >&2; sleep 0.6; echo out2; exec sleep 600'] } });
    const follow = await h.proxy.getLogs({ workerId: 'talk', options: { follow: true } });
    const seen: string[] = [];
    for await (const c of follow) {
      seen.push(`${c.stream}:${c.data.trim()}`);
      assert.ok(!Number.isNaN(Date.parse(c.timestamp)), 'each chunk has a timestamp');
      if (seen.length === 3) break;
    }
    assert.deepEqual([...seen].sort(), ['stderr:err1', 'stdout:out1', 'stdout:out2']);
    const errOnly = [];
    for await (const c of await h.proxy.getLogs({ workerId: 'talk', options: { stdout: false } })) errOnly.push(c.data);
    assert.deepEqual(errOnly, ['err1\n']);
  });

  it('getCapacity subtracts what running workers reserve and the configured reserve', async (t) => {
    const h = await openHarness(t, { reserved: { cpuMillicores: 100, memoryMiB: 64 } });
    const before = await h.proxy.getCapacity({});
    const info = (await docker.info()) as { NCPU: number; MemTotal: number };
    assert.equal(before.total.cpuMillicores, info.NCPU * 1000 - 100);
    assert.equal(before.total.memoryMiB, Math.floor(info.MemTotal / 1024 / 1024) - 64);
    await h.proxy.createWorker({ workerId: 'cap', spec: longSpec('cap', { resources: { cpuMillicores: 300, memoryMiB: 32 } }) });
    const after = await h.proxy.getCapacity({});
    assert.equal(after.activeWorkers, before.activeWorkers + 1);
    assert.equal(after.used.cpuMillicores, before.used.cpuMillicores + 300);
    assert.equal(after.available.memoryMiB, before.available.memoryMiB - 32);
    const tooBig = await h.proxy.createWorker({ workerId: 'huge', spec: longSpec('huge', { resources: { cpuMillicores: 1_000_000 } }) }).then(
      () => 'created',
      (e: unknown) => (isWorkerManagerError(e) ? e.code : String(e)),
    );
    assert.equal(tooBig, 'WM_ERR_RESOURCE_EXHAUSTED');
  });
});
