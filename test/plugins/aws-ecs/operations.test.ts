import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RegisterTaskDefinitionCommand } from '@aws-sdk/client-ecs';
import type { LogChunk, WorkerState } from '@worker-manager/plugin-sdk';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import type { EcsDouble } from '../../doubles/awsEcs.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { ecsClient, grantTestEnv, harness, IMAGE, startDouble } from './helpers.ts';

const skip = await requireDocker();
grantTestEnv();

type Provider = PluginHarness<'provider'>['proxy'];

const isFinal = (s: WorkerState): boolean => s.phase === 'Terminated' || s.phase === 'Failed';
const until = (p: Provider, workerId: string, done: (s: WorkerState) => boolean, what: string): Promise<WorkerState> =>
  waitFor(async () => {
    const s = await p.getWorkerStatus({ workerId });
    return done(s) ? s : undefined;
  }, `${workerId}: ${what}`);
const readAll = async (p: Provider, workerId: string, options: Record<string, unknown> = {}): Promise<LogChunk[]> => {
  const out: LogChunk[] = [];
  for await (const c of await p.getLogs({ workerId, options })) out.push(c);
  return out;
};
const text = (chunks: readonly LogChunk[]): string => chunks.map((c) => c.data).join('');

describe('aws-ecs provider operations through the ECS double', { skip }, () => {
  let d: EcsDouble;
  let h: PluginHarness<'provider'>;
  let n = 0;
  const id = (tag: string): string => `ops-${tag}-${(n++).toString(36)}`;

  before(async () => {
    // Tasks stay PROVISIONING a moment, so that the pending state is seen, as on a real cluster.
    d = await startDouble({ provisioningDelayMs: 500 });
    h = await harness(d);
  });
  after(async () => {
    await h?.close();
    await d?.close();
  });

  it('createWorker answers Starting(Provisioning) with the task ARN; the worker then runs; terminate ends it Terminated(143)', async () => {
    const workerId = id('run');
    const w = await h.proxy.createWorker({ workerId, spec: { image: IMAGE, command: ['sh', '-c', 'echo hi; exec sleep 600'], labels: { team: 'ci' } } });
    assert.deepEqual(w.state, { phase: 'Starting', pendingReason: 'Provisioning' });
    assert.match(w.providerRef ?? '', /^arn:aws:ecs:us-east-1:123456789012:task\/wm-test\/[0-9a-f]{32}$/);
    assert.equal(w.labels['team'], 'ci');
    assert.equal(w.labels['worker-manager/worker-id'], workerId);
    assert.equal(w.labels['worker-manager/instance'], h.owner['worker-manager/instance']);
    await until(h.proxy, workerId, (s) => s.phase === 'Running', 'Running');
    const r = await h.proxy.terminateWorker({ workerId });
    assert.deepEqual(r, { workerId, state: { phase: 'Terminated', exitCode: 143 }, alreadyGone: false });
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId }), { phase: 'Terminated', exitCode: 143 });
  });

  it('a task whose container exits non-zero is Failed(ExitCode<n>) with its exit code; exit 0 is Terminated(0)', async () => {
    const bad = id('exit7');
    const ok = id('exit0');
    await h.proxy.createWorker({ workerId: bad, spec: { image: IMAGE, command: ['sh', '-c', 'echo bye; exit 7'] } });
    await h.proxy.createWorker({ workerId: ok, spec: { image: IMAGE, command: ['sh', '-c', 'exit 0'] } });
    assert.deepEqual(await until(h.proxy, bad, isFinal, 'ended'), { phase: 'Failed', reason: 'ExitCode7', exitCode: 7 });
    assert.deepEqual(await until(h.proxy, ok, isFinal, 'ended'), { phase: 'Terminated', exitCode: 0 });
    assert.equal(text(await readAll(h.proxy, bad)), 'bye\n', 'the logs of an ended task stay readable');
  });

  it('getLogs tails the last lines, and follow delivers new lines with increasing seq until the task stops', async () => {
    const workerId = id('logs');
    await h.proxy.createWorker({ workerId, spec: { image: IMAGE, command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line-$i; done; exec sleep 600'] } });
    await waitFor(async () => text(await readAll(h.proxy, workerId)).includes('line-5'), 'five lines in CloudWatch');
    const tail = await readAll(h.proxy, workerId, { tailLines: 2 });
    assert.deepEqual(tail.map((c) => c.data), ['line-4\n', 'line-5\n']);
    assert.deepEqual(tail.map((c) => c.seq), [3, 4], 'seq is the position in the stream');
    const since = await readAll(h.proxy, workerId, { sinceSeq: 4 });
    assert.deepEqual(since.map((c) => c.data), ['line-5\n']);
    await h.proxy.terminateWorker({ workerId });

    const follower = id('follow');
    await h.proxy.createWorker({ workerId: follower, spec: { image: IMAGE, command: ['sh', '-c', 'echo a; sleep 2; echo b; sleep 2; echo c'] } });
    const seen: LogChunk[] = [];
    for await (const c of await h.proxy.getLogs({ workerId: follower, options: { follow: true } })) seen.push(c);
    // The stream ended by itself once the task stopped, with every line the container printed.
    assert.deepEqual(seen.map((c) => c.data), ['a\n', 'b\n', 'c\n']);
    assert.deepEqual(seen.map((c) => c.seq), [0, 1, 2]);
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: follower }), { phase: 'Terminated', exitCode: 0 });
  });

  it('a new thread (or a restarted host) finds and adopts the workers by startedBy; another instance does not see them', async () => {
    const workerId = id('adopt');
    const spec = { image: IMAGE, command: ['sh', '-c', 'exec sleep 600'] };
    const first = await h.proxy.createWorker({ workerId, spec });
    const fresh = await harness(d);
    const stranger = await harness(d, {}, 'another-host');
    try {
      const listed = (await fresh.proxy.listWorkers({})).find((w) => w.workerId === workerId);
      assert.ok(listed !== undefined, 'listWorkers of a fresh thread finds the worker');
      assert.equal(listed.providerRef, first.providerRef);
      assert.equal(listed.createdAt, first.createdAt);
      const again = await fresh.proxy.createWorker({ workerId, spec });
      assert.equal(again.providerRef, first.providerRef, 'a repeated create from another thread returns the same task');
      assert.ok(!(await stranger.proxy.listWorkers({})).some((w) => w.workerId === workerId), 'another host does not list it');
      await assert.rejects(stranger.proxy.getWorkerStatus({ workerId }), { code: 'WM_ERR_NOT_FOUND' });
      const r = await fresh.proxy.terminateWorker({ workerId });
      assert.equal(r.alreadyGone, false);
    } finally {
      await fresh.close();
      await stranger.close();
    }
  });

  it('equal specs share one registered task definition (its family named after the spec)', async () => {
    const before = d.calls.filter((c) => c.operation === 'RegisterTaskDefinition').length;
    const spec = { image: IMAGE, command: ['sh', '-c', 'exec sleep 600'], resources: { cpuMillicores: 1000, memoryMiB: 3000 } };
    const a = id('share');
    const b = id('share');
    await h.proxy.createWorker({ workerId: a, spec });
    const other = await harness(d);
    try {
      await other.proxy.createWorker({ workerId: b, spec });
    } finally {
      await other.close();
    }
    assert.equal(d.calls.filter((c) => c.operation === 'RegisterTaskDefinition').length - before, 1, 'the second thread found the family with DescribeTaskDefinition');
    await h.proxy.terminateWorker({ workerId: a });
    await h.proxy.terminateWorker({ workerId: b });
  });

  it('with a configured task definition, command and env go in as container overrides', async () => {
    const ecs = ecsClient(d);
    const family = `configured-${d.id}`;
    try {
      await ecs.send(
        new RegisterTaskDefinitionCommand({
          family,
          requiresCompatibilities: ['FARGATE'],
          networkMode: 'awsvpc',
          cpu: '256',
          memory: '512',
          executionRoleArn: `arn:aws:iam::${d.accountId}:role/exec`,
          containerDefinitions: [
            {
              name: 'job',
              image: IMAGE,
              essential: true,
              logConfiguration: { logDriver: 'awslogs', options: { 'awslogs-group': '/wm/test-workers', 'awslogs-region': d.region, 'awslogs-stream-prefix': 'wm', 'awslogs-create-group': 'true' } },
            },
          ],
        }),
      );
    } finally {
      ecs.destroy();
    }
    const configured = await harness(d, { taskDefinition: family, containerName: 'job' });
    try {
      const workerId = id('conf');
      await configured.proxy.createWorker({ workerId, spec: { command: ['sh', '-c', 'echo "greeting=$GREETING"'], env: { GREETING: 'hello' } } });
      assert.deepEqual(await until(configured.proxy, workerId, isFinal, 'ended'), { phase: 'Terminated', exitCode: 0 });
      assert.equal(text(await readAll(configured.proxy, workerId)), 'greeting=hello\n');
    } finally {
      await configured.close();
    }
  });
});
