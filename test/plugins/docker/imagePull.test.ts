import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Worker as Thread } from 'node:worker_threads';
import { isWorkerManagerError, type RuntimeSpec, type SecretMount, type WorkerEvent } from '@worker-manager/plugin-sdk';
import { OCI_MANIFEST_V1, startRegistryDouble, type RegistryDouble } from '../../helpers/registryDouble.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { budget, within } from '../../helpers/waitFor.ts';
import { docker, IMAGE, inspect, newHostId, openHarness, ownedCounts, removeOwned, secretsRoot, waitFor } from './helpers.ts';

const skip = await requireDocker();

/** Budget of a wait that spans an image pull (or a lease expiry and a pull) on a loaded machine. */
const PULL_MS = 60_000;
/**
 * Lease stale time of tests with two harnesses in this process: the events lease is renewed every second, so a
 * shorter one would move between them whenever the test process is busy for a moment.
 */
const TWO_THREADS = { leaseStaleMs: 3_000 };

/** A registry double for one test, serving the test image under a repository no other test uses. */
async function registry(t: TestContext, options: Parameters<typeof startRegistryDouble>[1] = {}): Promise<{ reg: RegistryDouble; repo: string; ref: string }> {
  const reg = await startRegistryDouble(docker, options);
  t.after(() => reg.close());
  const repo = `wm-test/pull-${randomBytes(4).toString('hex')}`;
  const ref = await reg.serve(IMAGE, repo, '1');
  return { reg, repo, ref };
}

/**
 * Removes the test's workers, then the image pulled for them. A background create still finishing could add a
 * container the first pass missed: the removal is repeated (containers, then the image) until the image is gone.
 */
function removeAfterwards(t: TestContext, hostId: string, ref: string): void {
  t.after(async () => {
    await waitFor(async () => {
      await removeOwned(hostId);
      return docker
        .getImage(ref)
        .remove({ force: true })
        .then(
          () => true,
          (e: { statusCode?: number }) => e.statusCode === 404 || undefined,
        );
    }, `the test image ${ref} to be removed`).catch((e: unknown) => t.diagnostic(`cleanup: ${String(e)}`));
  });
}

type Harness = Awaited<ReturnType<typeof openHarness>>;

/**
 * A state dir for the harnesses of one test (threads of one instance). Its cleanup closes them before removing it:
 * `t.after` hooks run in the order they were registered, and a harness writes to its state dir until it is closed.
 */
async function sharedStateDir(t: TestContext): Promise<{ dir: string; open(config: Record<string, unknown>, hostId?: string): Promise<Harness> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-docker-pull-'));
  const opened: Harness[] = [];
  t.after(async () => {
    await Promise.all(opened.map((h) => h.close()));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dir,
    async open(config, hostId) {
      const h = await openHarness(t, config, { stateDir: dir, ...(hostId === undefined ? {} : { hostId }) });
      opened.push(h);
      return h;
    },
  };
}

/** Every file under `dir` with its content: what the plugin keeps on disk. */
async function filesUnder(dir: string): Promise<Array<{ file: string; text: string }>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return Promise.all(
    entries
      .filter((e) => e.isFile())
      .map(async (e) => {
        const file = path.join(e.parentPath, e.name);
        return { file: path.relative(dir, file), text: await readFile(file, 'utf8') };
      }),
  );
}

/** Worker ids with a pending-create folder under the state dir (tombstones of cancels are not markers). */
const pendingIds = async (stateDir: string): Promise<string[]> => (await readdir(path.join(stateDir, 'pending'))).filter((n) => !n.startsWith('.')).sort();
const starting = (pendingReason: string) => ({ phase: 'Starting', pendingReason });
const eventsOf = (workerId: string, ...lists: WorkerEvent[][]): WorkerEvent[] => lists.flat().filter((e) => e.workerId === workerId);
const isCode = (code: string) => (e: unknown): boolean => {
  assert.ok(isWorkerManagerError(e), String(e));
  assert.equal(e.code, code, e.message);
  return true;
};
const fileSecret = (value: string): SecretMount => ({ strategy: 'file', name: 'cert', version: '1', path: 'cert.pem', value });

describe('docker provider: createWorker returns on acceptance, the image pull runs in the background', { skip, concurrency: true }, () => {
  it('returns Starting{ImagePull} while the registry holds the pull; every thread sees it; it runs with its secrets once the pull ends', { timeout: budget(180_000) }, async (t) => {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const { reg, repo, ref } = await registry(t, { basicAuth: { username: 'ci', password } });
    const { dir: stateDir, open } = await sharedStateDir(t);
    const config = { registryAuthSecret: 'registry', ...TWO_THREADS };
    const h = await open(config);
    removeAfterwards(t, h.hostId, ref);
    // Another thread of the same instance: same state dir, same owner.
    const other = await open(config, h.hostId);
    const fileValue = `file-${randomBytes(8).toString('hex')}`;
    const envValue = `env-${randomBytes(8).toString('hex')}`;
    const secrets: SecretMount[] = [
      { strategy: 'env', name: 'registry', version: '1', envName: 'REGISTRY_AUTH', value: JSON.stringify({ username: 'ci', password, serveraddress: reg.host }) },
      fileSecret(fileValue),
      { strategy: 'env', name: 'token', version: '1', envName: 'API_TOKEN', value: envValue },
    ];
    const spec: RuntimeSpec = { image: ref, command: ['sh', '-c', 'echo up; exec sleep 600'], labels: { team: 'pull' } };

    reg.hold();
    const w = await h.proxy.createWorker({ workerId: 'pulled', spec, secrets });
    assert.deepEqual(w.state, starting('ImagePull'));
    assert.equal(w.providerRef, undefined, 'no container yet');
    await waitFor(() => reg.manifestRequests(repo) > 0, 'the engine to ask the registry for the manifest', PULL_MS);

    assert.deepEqual(await other.proxy.getWorkerStatus({ workerId: 'pulled' }), starting('ImagePull'), 'another thread reports the pending worker');
    const listed = await other.proxy.listWorkers({ labels: { team: 'pull' } });
    assert.deepEqual(listed.map((x) => [x.workerId, x.state, x.createdAt]), [['pulled', starting('ImagePull'), w.createdAt]]);
    assert.equal(listed[0]?.labels['worker-manager/host'], h.hostId, 'listed with the owner labels, so adoption finds it');
    assert.equal(listed[0]?.labels['worker-manager/instance'], 'test');
    assert.deepEqual(await other.proxy.createWorker({ workerId: 'pulled', spec, secrets }), w, 'a repeated create joins the pending one');
    await assert.rejects(other.proxy.createWorker({ workerId: 'pulled', spec: { ...spec, command: ['true'] }, secrets }), isCode('WM_ERR_ALREADY_EXISTS'));
    assert.equal((await other.proxy.getCapacity({})).activeWorkers, 1, 'a pending worker counts as active');
    const onDisk = await filesUnder(stateDir);
    assert.ok(onDisk.some((f) => f.file === path.join('pending', 'pulled', 'marker.json')), `a marker on disk (${onDisk.map((f) => f.file).join(', ')})`);
    for (const value of [password, fileValue, envValue]) assert.ok(!onDisk.some((f) => f.text.includes(value)), 'no secret value or credential on disk');
    assert.equal(eventsOf('pulled', h.events, other.events).length, 0, 'nothing reported while the pull is held');

    reg.release();
    await waitFor(async () => (await other.proxy.getWorkerStatus({ workerId: 'pulled' })).phase === 'Running', 'the worker to run once the pull is released', PULL_MS);
    const running = await waitFor(
      () => eventsOf('pulled', h.events, other.events).find((e) => e.type === 'WorkerStateChanged' && e.newState.phase === 'Running'),
      'a state change to Running',
    );
    assert.deepEqual(running.type === 'WorkerStateChanged' && running.oldState, starting('ContainerCreating'));
    const events = eventsOf('pulled', h.events, other.events);
    const pulledChange = events.find((e) => e.type === 'WorkerStateChanged' && e.newState.phase === 'Starting');
    assert.deepEqual(pulledChange?.type === 'WorkerStateChanged' && [pulledChange.oldState, pulledChange.newState], [starting('ImagePull'), starting('ContainerCreating')]);
    const created = events.filter((e) => e.type === 'WorkerCreated');
    const worker = (await h.proxy.listWorkers({ labels: { team: 'pull' } }))[0];
    assert.equal(created.length, 1, 'one WorkerCreated');
    assert.equal(created[0]?.type === 'WorkerCreated' && created[0].providerRef, worker?.providerRef);
    assert.equal(worker?.createdAt, w.createdAt, 'the container keeps the creation time of the accepted worker');
    assert.ok(!events.some((e) => e.type === 'WorkerFailed'));

    const info = await inspect(worker?.providerRef);
    assert.equal(info.Config.Image, ref);
    assert.ok((await docker.getImage(ref).inspect()).Config.Labels?.['wm-test/registry-double'] !== undefined, 'the image is the one the registry served');
    assert.ok(reg.requests.some((r) => r.path.includes('/manifests/') && r.authorized), 'the pull used the registry credentials');
    assert.equal((await other.proxy.executeCommand({ workerId: 'pulled', command: ['cat', '/run/secrets/cert.pem'] })).stdout, fileValue, 'file secrets reach the worker');
    assert.equal((await other.proxy.executeCommand({ workerId: 'pulled', command: ['sh', '-c', 'printf %s "$API_TOKEN"'] })).stdout, envValue, 'env secrets too');
    assert.ok(!(info.Config.Env ?? []).some((e) => e.startsWith('REGISTRY_AUTH=') || e.includes(password)), 'the registry credentials are not');
    assert.deepEqual(await pendingIds(stateDir), [], 'the marker is gone once the container stands for the worker');
    for (const value of [password, fileValue, envValue]) {
      assert.ok(!JSON.stringify([h.events, other.events, h.logs, other.logs]).includes(value), 'no secret value in events or logs');
    }
    assert.equal((await h.proxy.terminateWorker({ workerId: 'pulled', gracePeriodMs: 0 })).alreadyGone, false);
  });

  it('a pull that fails makes the worker Failed{ImagePullFailed}: one event, then status and listings until terminate', { timeout: budget(120_000) }, async (t) => {
    const { reg, repo } = await registry(t);
    const { dir: stateDir, open } = await sharedStateDir(t);
    const h = await open(TWO_THREADS);
    const missing = `${reg.host}/${repo}:no-such-tag`;
    removeAfterwards(t, h.hostId, missing);
    const spec: RuntimeSpec = { image: missing, command: ['true'], labels: { team: 'nopull' } };
    const w = await h.proxy.createWorker({ workerId: 'nopull', spec });
    assert.deepEqual(w.state, starting('ImagePull'), 'the create is accepted: the pull has not even begun');

    const failed = await waitFor(() => h.events.find((e) => e.workerId === 'nopull' && e.type === 'WorkerFailed'), 'WorkerFailed', PULL_MS);
    assert.equal(failed.type === 'WorkerFailed' && failed.reason, 'ImagePullFailed');
    const change = h.events.find((e) => e.workerId === 'nopull' && e.type === 'WorkerStateChanged');
    assert.deepEqual(change?.type === 'WorkerStateChanged' && [change.oldState, change.newState], [starting('ImagePull'), { phase: 'Failed', reason: 'ImagePullFailed' }]);
    const log = h.logs.find((l) => l.fields?.['workerId'] === 'nopull' && l.fields['reason'] === 'ImagePullFailed');
    assert.ok(String(log?.fields?.['message']).includes(missing), `the failure names the image: ${String(log?.fields?.['message'])}`);

    const fresh = await open(TWO_THREADS, h.hostId);
    assert.deepEqual(await fresh.proxy.getWorkerStatus({ workerId: 'nopull' }), { phase: 'Failed', reason: 'ImagePullFailed' }, 'it stays Failed, for every thread');
    assert.deepEqual((await fresh.proxy.listWorkers({ labels: { team: 'nopull' } })).map((x) => x.state), [{ phase: 'Failed', reason: 'ImagePullFailed' }]);
    assert.deepEqual((await fresh.proxy.createWorker({ workerId: 'nopull', spec })).state, { phase: 'Failed', reason: 'ImagePullFailed' }, 'a repeated create returns it as it is');
    assert.deepEqual(await fresh.proxy.terminateWorker({ workerId: 'nopull' }), { workerId: 'nopull', state: { phase: 'Failed', reason: 'ImagePullFailed' }, alreadyGone: true });
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'nopull' }), isCode('WM_ERR_NOT_FOUND'));
    assert.deepEqual(await pendingIds(stateDir), [], 'terminate removed the marker');
    // Barrier: a worker that ends at once, reported after anything the engine said earlier (by the lease holder).
    await h.proxy.createWorker({ workerId: 'nopull-barrier', spec: { image: IMAGE, command: ['true'] } });
    await waitFor(() => eventsOf('nopull-barrier', h.events, fresh.events).some((e) => e.type === 'WorkerTerminated'), 'the WorkerTerminated of the barrier worker');
    assert.equal(eventsOf('nopull', h.events, fresh.events).filter((e) => e.type === 'WorkerFailed').length, 1, 'one WorkerFailed');
    assert.equal(eventsOf('nopull', h.events, fresh.events).filter((e) => e.type === 'WorkerTerminated').length, 0, 'removing a failed worker is no termination');
  });

  it('terminate during a held pull, from another thread: the task stops and nothing of the worker is left', { timeout: budget(180_000) }, async (t) => {
    const { reg, repo, ref } = await registry(t);
    const { dir: stateDir, open } = await sharedStateDir(t);
    const h = await open(TWO_THREADS);
    removeAfterwards(t, h.hostId, ref);
    const other = await open(TWO_THREADS, h.hostId);
    const claim = `wm-test-pv-${h.hostId}`;
    const spec: RuntimeSpec = {
      image: ref,
      command: ['sleep', '600'],
      network: { type: 'Isolated', isolation: 'Strict' },
      volumes: [{ mountPath: '/data', source: { type: 'PersistentVolume', claimName: claim } }],
    };

    reg.hold();
    await h.proxy.createWorker({ workerId: 'cancel', spec, secrets: [fileSecret('cancelled-value')] });
    await waitFor(() => reg.manifestRequests(repo) > 0, 'the pull to reach the registry', PULL_MS);
    assert.deepEqual(await other.proxy.terminateWorker({ workerId: 'cancel', gracePeriodMs: 0 }), { workerId: 'cancel', state: { phase: 'Terminated' }, alreadyGone: false });
    await assert.rejects(h.proxy.getWorkerStatus({ workerId: 'cancel' }), isCode('WM_ERR_NOT_FOUND'));
    assert.deepEqual(await h.proxy.listWorkers({}), []);
    // The task runs in h's thread: it sees the marker gone at its next beat, aborts the pull and says so.
    await waitFor(() => h.logs.find((l) => l.message === 'docker provider: pending create cancelled' && l.fields?.['workerId'] === 'cancel'), 'the task to stop', PULL_MS);
    reg.release();

    // Barrier: a worker of the same image pulled and running, so whatever the engine still did for the cancelled pull
    // is done too. Then nothing of the cancelled worker may exist.
    await other.proxy.createWorker({ workerId: 'after', spec: { image: ref, command: ['sleep', '600'] } });
    await waitFor(async () => (await other.proxy.getWorkerStatus({ workerId: 'after' })).phase === 'Running', 'the barrier worker to run', PULL_MS);
    const label = [`worker-manager/host=${h.hostId}`];
    assert.deepEqual((await docker.listContainers({ all: true, filters: { label } })).map((c) => c.Labels['worker-manager/worker-id']), ['after'], 'no container of the cancelled worker');
    assert.deepEqual(
      (await docker.listNetworks({ filters: { label } })).map((n) => n.Name),
      [`wm-${h.hostId}-test`],
      'no network of the cancelled worker (only the instance network of the barrier)',
    );
    assert.equal((await ownedCounts(h.hostId)).volumes, 0, 'its volume was never made');
    const folders = await readdir(path.join(secretsRoot, `wm-${h.hostId}-test`)).catch(() => [] as string[]);
    assert.deepEqual(folders.filter((f) => f.startsWith('cancel.')), [], 'no secret folder');
    assert.deepEqual(await pendingIds(stateDir), [], 'no marker');
    const events = eventsOf('cancel', h.events, other.events);
    assert.deepEqual(
      events.map((e) => e.type),
      ['WorkerStateChanged', 'WorkerTerminated'],
      `the cancel is reported as a termination, and nothing else (${JSON.stringify(events)})`,
    );
  });

  it('a plugin thread killed mid-pull: the create is resumed once its lease expires; one created with secrets fails with SecretsUnavailable', { timeout: budget(240_000) }, async (t) => {
    const { reg, repo, ref } = await registry(t);
    const hostId = newHostId('resume');
    removeAfterwards(t, hostId, ref);
    const { dir: stateDir, open } = await sharedStateDir(t);
    const config = { secretsDir: secretsRoot, leaseStaleMs: 1_000, defaultGracePeriodMs: 1_000 };
    const spec: RuntimeSpec = { image: ref, command: ['sh', '-c', 'echo resumed; exec sleep 600'] };
    const workers = [
      { workerId: 'plain', spec },
      { workerId: 'secret', spec, secrets: [fileSecret('never-on-disk')] },
    ];

    reg.hold();
    const thread = new Thread(new URL('./fixtures/tsWorker.mjs', import.meta.url), {
      workerData: { entry: new URL('./fixtures/createManyThread.ts', import.meta.url).href, stateDir, hostId, config, workers },
    });
    t.after(() => thread.terminate());
    const accepted = new Set<string>();
    thread.on('message', (m: string) => {
      if (m.startsWith('created:')) accepted.add(m.slice('created:'.length));
    });
    // The thread compiles the plugin first: seconds, far more on a loaded machine.
    await within(new Promise((resolve, reject) => {
      thread.once('error', reject);
      thread.on('message', (m: string) => m === 'creating' && resolve(undefined));
    }), 'the plugin thread to start creating', 90_000);
    await waitFor(() => accepted.size === 2, 'both creates to be accepted', PULL_MS);
    await waitFor(() => reg.manifestRequests(repo) > 0, 'the pull to reach the registry', PULL_MS);
    await thread.terminate();

    const h = await open(config, hostId);
    const failed = await waitFor(async () => {
      const s = await h.proxy.getWorkerStatus({ workerId: 'secret' });
      return s.phase === 'Failed' ? s : undefined;
    }, 'the create with secrets to be resumed and fail', PULL_MS);
    assert.deepEqual(failed, { phase: 'Failed', reason: 'SecretsUnavailable' });
    await waitFor(() => h.events.find((e) => e.workerId === 'secret' && e.type === 'WorkerFailed' && e.reason === 'SecretsUnavailable'), 'WorkerFailed SecretsUnavailable');
    await waitFor(() => h.logs.find((l) => l.message === 'docker provider: resuming a pending create' && l.fields?.['workerId'] === 'plain'), 'the plain create to be resumed', PULL_MS);
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: 'plain' }), starting('ImagePull'), 'still pulling: the registry holds it');

    reg.release();
    await waitFor(async () => (await h.proxy.getWorkerStatus({ workerId: 'plain' })).phase === 'Running', 'the resumed worker to run', PULL_MS);
    // The task reports Running once its marker is gone: the end of the create.
    await waitFor(() => h.events.find((e) => e.workerId === 'plain' && e.type === 'WorkerStateChanged' && e.newState.phase === 'Running'), 'the Running event of the resumed create');
    assert.deepEqual(await pendingIds(stateDir), ['secret'], 'the failed create keeps its marker until terminate');
    assert.ok(!(await filesUnder(stateDir)).some((f) => f.text.includes('never-on-disk')));
    assert.ok(h.events.some((e) => e.workerId === 'plain' && e.type === 'WorkerCreated'));
    assert.deepEqual((await h.proxy.terminateWorker({ workerId: 'secret' })).state, { phase: 'Failed', reason: 'SecretsUnavailable' });
    assert.equal((await h.proxy.terminateWorker({ workerId: 'plain', gracePeriodMs: 0 })).alreadyGone, false);
    assert.deepEqual(await pendingIds(stateDir), []);
  });

  it('a plugin restarted mid-pull (closed, then a new thread on the same state dir) resumes the create; OCI manifests pull too', { timeout: budget(180_000) }, async (t) => {
    const reg = await startRegistryDouble(docker);
    t.after(() => reg.close());
    const repo = `wm-test/pull-${randomBytes(4).toString('hex')}`;
    const ref = await reg.serve(IMAGE, repo, '1', OCI_MANIFEST_V1);
    const { open } = await sharedStateDir(t);
    const first = await open({ leaseStaleMs: 1_000 });
    removeAfterwards(t, first.hostId, ref);

    reg.hold();
    const w = await first.proxy.createWorker({ workerId: 'restarted', spec: { image: ref, command: ['sleep', '600'] } });
    await waitFor(() => reg.manifestRequests(repo) > 0, 'the pull to reach the registry', PULL_MS);
    await first.close();
    const second = await open({ leaseStaleMs: 1_000 }, first.hostId);
    await waitFor(() => second.logs.find((l) => l.message === 'docker provider: resuming a pending create' && l.fields?.['workerId'] === 'restarted'), 'the new thread to resume the create', PULL_MS);
    reg.release();
    await waitFor(async () => (await second.proxy.getWorkerStatus({ workerId: 'restarted' })).phase === 'Running', 'the resumed worker to run', PULL_MS);
    const [listed] = await second.proxy.listWorkers({});
    assert.equal(listed?.createdAt, w.createdAt);
    assert.ok(second.events.some((e) => e.workerId === 'restarted' && e.type === 'WorkerCreated' && e.providerRef === listed?.providerRef));
    assert.ok(!first.events.some((e) => e.workerId === 'restarted' && e.type === 'WorkerCreated'), 'the closed thread made nothing');
    assert.equal((await second.proxy.terminateWorker({ workerId: 'restarted', gracePeriodMs: 0 })).alreadyGone, false);
  });
});
