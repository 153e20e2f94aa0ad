import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Task } from '@aws-sdk/client-ecs';
import { classify, toWorkerError } from '../../../plugins/aws-ecs/src/awsError.ts';
import { resolveConfig } from '../../../plugins/aws-ecs/src/config.ts';
import { runTaskFailure } from '../../../plugins/aws-ecs/src/runTaskFailure.ts';
import { clientTokenOf, startedByOf, taskSize, taskTags } from '../../../plugins/aws-ecs/src/taskPlan.ts';
import { stateOfTask, STOP_REASON_PREFIX } from '../../../plugins/aws-ecs/src/taskState.ts';

const stopped = (extra: Partial<Task>, container: Record<string, unknown> = {}): Task => ({ lastStatus: 'STOPPED', desiredStatus: 'STOPPED', containers: [{ name: 'worker', ...container }], ...extra });

describe('aws-ecs: task states', () => {
  it('maps the pending lastStatus values to Starting with a reason, RUNNING to Running, the stopping ones to Terminating', () => {
    assert.deepEqual(stateOfTask({ lastStatus: 'PROVISIONING' }, 'worker'), { phase: 'Starting', pendingReason: 'Provisioning' });
    assert.deepEqual(stateOfTask({ lastStatus: 'PENDING', pullStartedAt: new Date() }, 'worker'), { phase: 'Starting', pendingReason: 'ImagePull' });
    assert.deepEqual(stateOfTask({ lastStatus: 'PENDING', pullStartedAt: new Date(), pullStoppedAt: new Date() }, 'worker'), { phase: 'Starting', pendingReason: 'Pending' });
    assert.deepEqual(stateOfTask({ lastStatus: 'ACTIVATING' }, 'worker'), { phase: 'Starting', pendingReason: 'Activating' });
    assert.deepEqual(stateOfTask({ lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }, 'worker'), { phase: 'Running' });
    assert.deepEqual(stateOfTask({ lastStatus: 'RUNNING', desiredStatus: 'STOPPED' }, 'worker'), { phase: 'Terminating' });
    for (const s of ['DEACTIVATING', 'STOPPING', 'DEPROVISIONING']) assert.deepEqual(stateOfTask({ lastStatus: s }, 'worker'), { phase: 'Terminating' });
    assert.deepEqual(stateOfTask({ lastStatus: 'SOMETHING_NEW' }, 'worker'), { phase: 'Unknown' });
  });

  it('maps STOPPED by stopCode and exit code to the documented Failed reasons', () => {
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'EssentialContainerExited' }, { exitCode: 0 }), 'worker'), { phase: 'Terminated', exitCode: 0 });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'EssentialContainerExited' }, { exitCode: 2 }), 'worker'), { phase: 'Failed', reason: 'ExitCode2', exitCode: 2 });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'EssentialContainerExited' }, { exitCode: 137, reason: 'OutOfMemoryError: Container killed due to memory usage' }), 'worker'), {
      phase: 'Failed',
      reason: 'OOMKilled',
      exitCode: 137,
    });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'EssentialContainerExited' }), 'worker'), { phase: 'Failed', reason: 'ProcessLost' });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'TaskFailedToStart', stoppedReason: 'CannotPullContainerError: pull access denied' }), 'worker'), { phase: 'Failed', reason: 'ImagePullFailed' });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'TaskFailedToStart', stoppedReason: 'ResourceInitializationError: unable to pull secrets' }), 'worker'), { phase: 'Failed', reason: 'StartFailed' });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'UserInitiated', stoppedReason: `${STOP_REASON_PREFIX} (instance a)` }, { exitCode: 143 }), 'worker'), { phase: 'Terminated', exitCode: 143 });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'UserInitiated', stoppedReason: 'Task stopped by user' }, { exitCode: 143 }), 'worker'), { phase: 'Failed', reason: 'StoppedExternally', exitCode: 143 });
    assert.deepEqual(stateOfTask(stopped({ stopCode: 'SpotInterruption' }), 'worker'), { phase: 'Failed', reason: 'SpotInterruption' });
  });
});

describe('aws-ecs: task plan', () => {
  const config = resolveConfig({ cluster: 'c', logGroup: '/g' });

  it('sizes Fargate tasks to the smallest valid size that holds the request', () => {
    assert.deepEqual(taskSize({}, config), { cpu: 256, memory: 512 });
    assert.deepEqual(taskSize({ resources: { cpuMillicores: 300, memoryMiB: 600 } }, config), { cpu: 512, memory: 1024 });
    assert.deepEqual(taskSize({ resources: { cpuMillicores: 250, memoryMiB: 3000 } }, config), { cpu: 512, memory: 3072 });
    assert.deepEqual(taskSize({ resources: { cpuMillicores: 4000, memoryMiB: 8192 } }, config), { cpu: 4096, memory: 8192 });
    assert.throws(() => taskSize({ resources: { cpuMillicores: 64_000 } }, config), { code: 'WM_ERR_VALIDATION' });
    assert.deepEqual(taskSize({ resources: { cpuMillicores: 300, memoryMiB: 600 } }, { ...config, launchType: 'EC2' }), { cpu: 308, memory: 600 });
  });

  it('keeps startedBy and the clientToken within ECS limits, stable per instance and worker', () => {
    const owner = { 'worker-manager/host': 'h', 'worker-manager/instance': 'i' };
    assert.match(startedByOf(owner), /^wm-[0-9a-f]{24}$/);
    assert.equal(startedByOf(owner), startedByOf({ ...owner }));
    assert.notEqual(startedByOf(owner), startedByOf({ ...owner, 'worker-manager/instance': 'j' }));
    assert.equal(clientTokenOf('c', 's', 'w').length, 64);
  });

  it("refuses labels ECS cannot tag: an 'aws:' key, or more than 46 labels", () => {
    const owner = { 'worker-manager/host': 'h', 'worker-manager/instance': 'i' };
    assert.throws(() => taskTags('w', { labels: { 'aws:thing': 'x' } }, owner), { code: 'WM_ERR_VALIDATION' });
    const many = Object.fromEntries(Array.from({ length: 47 }, (_, i) => [`l${i}`, 'v']));
    assert.throws(() => taskTags('w', { labels: many }, owner), { code: 'WM_ERR_VALIDATION' });
    assert.equal(taskTags('w', { labels: Object.fromEntries(Object.entries(many).slice(0, 46)) }, owner).length, 50);
  });
});

describe('aws-ecs: errors', () => {
  it('maps RunTask failures[] to coded errors that say whether waiting helps', () => {
    assert.equal(runTaskFailure('w', [{ reason: 'RESOURCE:CPU' }]).code, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.equal(runTaskFailure('w', [{ reason: 'Capacity is unavailable at this time. Please try again later or in a different availability zone' }]).code, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.equal(runTaskFailure('w', [{ reason: 'AGENT' }]).transient, true);
    assert.equal(runTaskFailure('w', [{ reason: 'ATTRIBUTE' }]).code, 'WM_ERR_CONFIGURATION');
    assert.equal(runTaskFailure('w', [{ reason: 'SOMETHING' }]).code, 'WM_ERR_PROVIDER_SPECIFIC');
  });

  it('classifies AWS errors and keeps only safe facts in details', () => {
    const throttled = { name: 'ThrottlingException', message: 'Rate exceeded', $fault: 'client', $metadata: { httpStatusCode: 400, requestId: 'r-1' } };
    assert.deepEqual(classify(throttled, false), { kind: 'throttled' });
    const e = toWorkerError(throttled, classify(throttled, false), { operation: 'ecs:RunTask', workerId: 'w', attempts: 5 });
    assert.equal(e.code, 'WM_ERR_RESOURCE_EXHAUSTED');
    assert.deepEqual(e.details, { operation: 'ecs:RunTask', workerId: 'w', attempts: 5, awsError: 'ThrottlingException', httpStatus: 400, requestId: 'r-1', awsMessage: 'Rate exceeded', reason: 'throttled' });
    const denied = { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } };
    assert.equal(toWorkerError(denied, classify(denied, false), { operation: 'ecs:StopTask', attempts: 1 }).code, 'WM_ERR_AUTHORIZATION');
    const egress = new Error("the egress proxy refused ecs.eu-west-1.amazonaws.com:443 (HTTP 403): it is not in this instance's egress list");
    assert.deepEqual(classify(egress, false), { kind: 'egress' });
    assert.equal(classify({ name: 'TimeoutError', code: 'ECONNRESET' }, false).kind, 'network');
  });
});
