import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  RunTaskCommand,
  StopTaskCommand,
  type Task,
} from '@aws-sdk/client-ecs';
import type { EcsDouble } from '../../doubles/awsEcs.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { CLUSTER, ecsClient, IMAGE, logsClient, startDouble, TEST_KEYS } from './helpers.ts';

const skip = await requireDocker();

const NETWORK = { awsvpcConfiguration: { subnets: ['subnet-0a1b2c3d'], securityGroups: ['sg-0a1b2c3d'], assignPublicIp: 'DISABLED' as const } };
const LOG_GROUP = '/wm/double-test';

/** The awslogs stream of a task's container `main`, as ECS names it. */
const streamOf = (task: Task): string => `double/main/${task.taskArn!.slice(task.taskArn!.lastIndexOf('/') + 1)}`;

/**
 * The double's wire behaviour through the real `@aws-sdk/client-ecs` and `@aws-sdk/client-cloudwatch-logs`: field
 * names, error shapes, SigV4, clientToken idempotency, states that follow a real container, and its output as
 * CloudWatch events.
 */
describe('ECS + CloudWatch Logs double (real AWS SDK clients)', { skip }, () => {
  let d: EcsDouble;
  let ecs: ECSClient;
  let family: string;

  const describeTask = async (arn: string): Promise<Task> => {
    const r = await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: [arn], include: ['TAGS'] }));
    assert.ok(r.tasks?.[0] !== undefined, `task ${arn} described`);
    return r.tasks[0];
  };
  const untilStatus = (arn: string, status: string): Promise<Task> =>
    waitFor(async () => {
      const t = await describeTask(arn);
      return t.lastStatus === status ? t : undefined;
    }, `task to reach ${status}`);
  const run = async (command: string[], extra: Record<string, unknown> = {}): Promise<Task> => {
    const r = await ecs.send(new RunTaskCommand({ cluster: CLUSTER, taskDefinition: family, launchType: 'FARGATE', networkConfiguration: NETWORK, startedBy: 'double-test', overrides: { containerOverrides: [{ name: 'main', command }] }, ...extra }));
    assert.equal(r.failures?.length ?? 0, 0);
    assert.ok(r.tasks?.[0]?.taskArn !== undefined);
    return r.tasks[0];
  };

  before(async () => {
    d = await startDouble();
    ecs = ecsClient(d);
    family = `double-test-${d.id}`;
    const r = await ecs.send(
      new RegisterTaskDefinitionCommand({
        family,
        requiresCompatibilities: ['FARGATE'],
        networkMode: 'awsvpc',
        cpu: '256',
        memory: '512',
        executionRoleArn: `arn:aws:iam::${d.accountId}:role/exec`,
        containerDefinitions: [
          {
            name: 'main',
            image: IMAGE,
            essential: true,
            stopTimeout: 5,
            linuxParameters: { initProcessEnabled: true },
            logConfiguration: { logDriver: 'awslogs', options: { 'awslogs-group': LOG_GROUP, 'awslogs-region': d.region, 'awslogs-stream-prefix': 'double', 'awslogs-create-group': 'true' } },
          },
        ],
      }),
    );
    assert.equal(r.taskDefinition?.revision, 1);
    assert.equal(r.taskDefinition?.status, 'ACTIVE');
  });
  after(async () => {
    ecs?.destroy();
    await d?.close();
  });

  it('RunTask answers PROVISIONING; the task reaches RUNNING with its container; ListTasks by startedBy finds it; StopTask ends it UserInitiated with the reason given', async () => {
    const task = await run(['sh', '-c', 'echo up; exec sleep 600'], { tags: [{ key: 'owner', value: 'double-test' }] });
    assert.equal(task.lastStatus, 'PROVISIONING');
    assert.equal(task.desiredStatus, 'RUNNING');
    assert.ok(task.createdAt instanceof Date);
    const running = await untilStatus(task.taskArn!, 'RUNNING');
    assert.equal(running.containers?.[0]?.lastStatus, 'RUNNING');
    assert.deepEqual(running.tags, [{ key: 'owner', value: 'double-test' }]);
    const listed = await ecs.send(new ListTasksCommand({ cluster: CLUSTER, startedBy: 'double-test' }));
    assert.ok(listed.taskArns?.includes(task.taskArn!));
    const stopped = await ecs.send(new StopTaskCommand({ cluster: CLUSTER, task: task.taskArn!, reason: 'test: stop it' }));
    assert.equal(stopped.task?.desiredStatus, 'STOPPED');
    const end = await untilStatus(task.taskArn!, 'STOPPED');
    assert.equal(end.stopCode, 'UserInitiated');
    assert.equal(end.stoppedReason, 'test: stop it');
    assert.equal(end.containers?.[0]?.exitCode, 143, 'SIGTERM through the init process');
    const stoppedList = await ecs.send(new ListTasksCommand({ cluster: CLUSTER, startedBy: 'double-test', desiredStatus: 'STOPPED' }));
    assert.ok(stoppedList.taskArns?.includes(task.taskArn!));
  });

  it('a container that exits ends its task EssentialContainerExited with the exit code, and GetLogEvents serves its output', async () => {
    const task = await run(['sh', '-c', 'echo one; echo two >&2; exit 3']);
    const end = await untilStatus(task.taskArn!, 'STOPPED');
    assert.equal(end.stopCode, 'EssentialContainerExited');
    assert.equal(end.stoppedReason, 'Essential container in task exited');
    assert.equal(end.containers?.[0]?.exitCode, 3);
    const logs = logsClient(d);
    try {
      const first = await logs.send(new GetLogEventsCommand({ logGroupName: LOG_GROUP, logStreamName: streamOf(task), startFromHead: true }));
      // stdout and stderr reach the log driver through two pipes: their relative order is not kept (nor by awslogs).
      assert.deepEqual(first.events?.map((e) => e.message).sort(), ['one', 'two']);
      assert.ok(typeof first.events?.[0]?.timestamp === 'number');
      const again = await logs.send(new GetLogEventsCommand({ logGroupName: LOG_GROUP, logStreamName: streamOf(task), nextToken: first.nextForwardToken }));
      assert.equal(again.events?.length, 0);
      assert.equal(again.nextForwardToken, first.nextForwardToken, 'the same forward token at the end of the stream');
      await assert.rejects(logs.send(new GetLogEventsCommand({ logGroupName: LOG_GROUP, logStreamName: 'double/main/nope' })), { name: 'ResourceNotFoundException', message: 'The specified log stream does not exist.' });
      await assert.rejects(logs.send(new GetLogEventsCommand({ logGroupName: '/no/such/group', logStreamName: 'x' })), { name: 'ResourceNotFoundException', message: 'The specified log group does not exist.' });
    } finally {
      logs.destroy();
    }
  });

  it('RunTask with a clientToken is idempotent, and the same token with other parameters is a ConflictException', async () => {
    const clientToken = `token-${d.id}`;
    const a = await run(['sh', '-c', 'exec sleep 600'], { clientToken });
    const b = await run(['sh', '-c', 'exec sleep 600'], { clientToken });
    assert.equal(b.taskArn, a.taskArn);
    await assert.rejects(run(['sh', '-c', 'exec sleep 601'], { clientToken }), { name: 'ConflictException' });
    await ecs.send(new StopTaskCommand({ cluster: CLUSTER, task: a.taskArn! }));
    const end = await untilStatus(a.taskArn!, 'STOPPED');
    assert.equal(end.stoppedReason, 'Task stopped by user');
  });

  it('an image the engine lacks stops the task TaskFailedToStart with CannotPullContainerError', async () => {
    const fam = `double-missing-${d.id}`;
    await ecs.send(new RegisterTaskDefinitionCommand({ family: fam, containerDefinitions: [{ name: 'main', image: 'local/does-not-exist:1', essential: true }] }));
    const r = await ecs.send(new RunTaskCommand({ cluster: CLUSTER, taskDefinition: fam, launchType: 'EC2' }));
    const end = await untilStatus(r.tasks![0]!.taskArn!, 'STOPPED');
    assert.equal(end.stopCode, 'TaskFailedToStart');
    assert.match(end.stoppedReason ?? '', /^CannotPullContainerError/);
  });

  it("answers AWS's error shapes: unknown cluster, unknown task definition, missing network configuration, missing tasks", async () => {
    await assert.rejects(ecs.send(new ListTasksCommand({ cluster: 'nope' })), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(e.name, 'ClusterNotFoundException');
      assert.equal(e.message, 'Cluster not found.');
      assert.equal(e.$metadata?.httpStatusCode, 400);
      return true;
    });
    await assert.rejects(ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: 'no-such-family' })), { name: 'ClientException', message: 'Unable to describe task definition.' });
    await assert.rejects(ecs.send(new RunTaskCommand({ cluster: CLUSTER, taskDefinition: family, launchType: 'FARGATE' })), { name: 'InvalidParameterException' });
    const r = await ecs.send(new DescribeTasksCommand({ cluster: CLUSTER, tasks: ['arn:aws:ecs:us-east-1:123456789012:task/wm-test/0000'] }));
    assert.deepEqual(r.tasks, []);
    assert.deepEqual(r.failures, [{ arn: 'arn:aws:ecs:us-east-1:123456789012:task/wm-test/0000', reason: 'MISSING' }]);
  });

  it('checks SigV4: a wrong secret key is InvalidSignatureException, an unknown key id UnrecognizedClientException', async () => {
    const wrong = new ECSClient({ region: d.region, endpoint: d.url, credentials: { accessKeyId: TEST_KEYS.accessKeyId, secretAccessKey: 'not-the-key' }, maxAttempts: 1 });
    const stranger = new ECSClient({ region: d.region, endpoint: d.url, credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' }, maxAttempts: 1 });
    try {
      await assert.rejects(wrong.send(new ListTasksCommand({ cluster: CLUSTER })), { name: 'InvalidSignatureException' });
      await assert.rejects(stranger.send(new ListTasksCommand({ cluster: CLUSTER })), { name: 'UnrecognizedClientException' });
    } finally {
      wrong.destroy();
      stranger.destroy();
    }
  });

  it('injects throttling (ThrottlingException, which the SDK knows as throttling) and RunTask failures[]', async () => {
    d.injectFault({ kind: 'throttle' }, { operation: 'ListTasks', count: 1 });
    await assert.rejects(ecs.send(new ListTasksCommand({ cluster: CLUSTER })), (e: Error & { $retryable?: { throttling?: boolean } }) => {
      assert.equal(e.name, 'ThrottlingException');
      assert.equal(e.message, 'Rate exceeded');
      return true;
    });
    await ecs.send(new ListTasksCommand({ cluster: CLUSTER }));
    d.injectRunTaskFailure({ reason: 'RESOURCE:MEMORY' });
    const input = { cluster: CLUSTER, taskDefinition: family, launchType: 'FARGATE' as const, networkConfiguration: NETWORK, clientToken: `full-${d.id}` };
    const r = await ecs.send(new RunTaskCommand(input));
    assert.deepEqual(r.tasks, []);
    assert.equal(r.failures?.[0]?.reason, 'RESOURCE:MEMORY');
    // The same token gets the original result back, failures included: nothing is started by repeating it.
    const again = await ecs.send(new RunTaskCommand(input));
    assert.deepEqual(again.tasks, []);
    assert.equal(again.failures?.[0]?.reason, 'RESOURCE:MEMORY');
  });
});
