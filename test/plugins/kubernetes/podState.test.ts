import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { Keys } from '../../../plugins/kubernetes/src/names.ts';
import { stateOfPod } from '../../../plugins/kubernetes/src/podState.ts';
import { parseQuantity } from '../../../plugins/kubernetes/src/quantity.ts';

const keys = new Keys('worker-manager');
const pod = (status: V1Pod['status'], metadata: V1Pod['metadata'] = {}): V1Pod => ({ metadata, spec: { containers: [{ name: 'worker' }], nodeName: 'n1' }, status });
const terminated = (exitCode: number, reason: string) => ({ name: 'worker', image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason } } });

// The mappings the test node agent cannot produce (it neither evicts nor enforces activeDeadlineSeconds), pinned on pod
// objects shaped as a 1.20 kubelet writes them; the live paths are in kubernetes.test.ts.
describe('kubernetes pod state mapping', () => {
  it('an evicted pod is Failed(Evicted) and a kubelet-enforced deadline is Failed(DeadlineExceeded)', () => {
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }), keys), { phase: 'Failed', reason: 'Evicted' });
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', reason: 'DeadlineExceeded', containerStatuses: [terminated(137, 'Error')] }), keys), {
      phase: 'Failed',
      reason: 'DeadlineExceeded',
      exitCode: 137,
    });
  });

  it('a final state the plugin recorded wins over what the kubelet reports while the pod is stopped', () => {
    const p = pod({ phase: 'Failed', containerStatuses: [terminated(143, 'Error')] }, { annotations: { [keys.failure]: 'Unschedulable' }, deletionTimestamp: new Date() });
    assert.deepEqual(stateOfPod(p, keys), { phase: 'Failed', reason: 'Unschedulable', exitCode: 143 });
  });

  it('an end caused by a deletion the plugin did not ask for is Lost; one before the deletion keeps its exit', () => {
    const deleted = new Date('2026-01-01T00:00:10Z');
    const ended = (finishedAt: string) => ({ ...terminated(143, 'Error'), state: { terminated: { exitCode: 143, reason: 'Error', finishedAt: new Date(finishedAt) } } });
    const meta = { deletionTimestamp: deleted, deletionGracePeriodSeconds: 5 };
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', containerStatuses: [ended('2026-01-01T00:00:06Z')] }, meta), keys), { phase: 'Failed', reason: 'Lost', exitCode: 143 });
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', containerStatuses: [ended('2026-01-01T00:00:01Z')] }, meta), keys), { phase: 'Failed', reason: 'ExitCode143', exitCode: 143 });
    const ours = { ...meta, annotations: { [keys.stop]: 'terminate' } };
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', containerStatuses: [ended('2026-01-01T00:00:06Z')] }, ours), keys), { phase: 'Failed', reason: 'ExitCode143', exitCode: 143 });
  });

  it('exits: 0 is Terminated, OOMKilled and other codes are Failed with their reason', () => {
    assert.deepEqual(stateOfPod(pod({ phase: 'Succeeded', containerStatuses: [terminated(0, 'Completed')] }), keys), { phase: 'Terminated', exitCode: 0 });
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', containerStatuses: [terminated(137, 'OOMKilled')] }), keys), { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 });
    assert.deepEqual(stateOfPod(pod({ phase: 'Failed', containerStatuses: [terminated(3, 'Error')] }), keys), { phase: 'Failed', reason: 'ExitCode3', exitCode: 3 });
  });

  it('pending pods carry the scheduler or the container waiting reason', () => {
    const unscheduled: V1Pod = { metadata: {}, spec: { containers: [{ name: 'worker' }] }, status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] } };
    assert.deepEqual(stateOfPod(unscheduled, keys), { phase: 'Starting', pendingReason: 'Unschedulable' });
    for (const reason of ['ImagePullBackOff', 'ErrImagePull', 'ErrImageNeverPull', 'CreateContainerConfigError']) {
      const waiting = pod({ phase: 'Pending', containerStatuses: [{ name: 'worker', image: 'i', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason } } }] });
      assert.deepEqual(stateOfPod(waiting, keys), { phase: 'Starting', pendingReason: reason });
    }
  });

  it('reads quantities as the apiserver writes them', () => {
    assert.equal(parseQuantity('500m'), 0.5);
    assert.equal(parseQuantity('4Gi'), 4 * 2 ** 30);
    assert.equal(parseQuantity('1.5'), 1.5);
    assert.equal(parseQuantity('2k'), 2_000);
    assert.equal(parseQuantity('bogus'), undefined);
  });
});
