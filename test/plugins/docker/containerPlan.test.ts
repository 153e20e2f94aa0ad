import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import { resolveConfig } from '../../../plugins/docker/src/config.ts';
import { planContainer, underPrefix } from '../../../plugins/docker/src/containerPlan.ts';
import { exitedState, stateFromInspect } from '../../../plugins/docker/src/containerState.ts';
import { FrameDecoder } from '../../../plugins/docker/src/demux.ts';
import { mapDockerError } from '../../../plugins/docker/src/dockerErrors.ts';
import { LabelKeys } from '../../../plugins/docker/src/labels.ts';

// The pure mappings, checked without an engine: what the engine tests cannot reach here (GPUs) and the edge cases.
const plan = (spec: RuntimeSpec, config = {}) =>
  planContainer({
    workerId: 'w1',
    spec,
    secrets: [],
    config: resolveConfig(config),
    keys: new LabelKeys('worker-manager'),
    owner: { 'worker-manager/host': 'h', 'worker-manager/instance': 'i' },
    epoch: '1',
    createdAt: '2026-01-01T00:00:00.000Z',
    filesDir: '/dev/shm/x/w1.1',
  });

describe('docker provider: spec mapping', () => {
  it('maps GPUs to DeviceRequests', () => {
    const p = plan({ image: 'x', resources: { gpu: 2 } });
    assert.equal(p.gpu, 2);
    assert.deepEqual(p.options.HostConfig.DeviceRequests, [{ Driver: '', Count: 2, DeviceIDs: [], Capabilities: [['gpu']], Options: {} }]);
  });

  it('maps command to Entrypoint and args to Cmd, and health check timings to nanoseconds', () => {
    const p = plan({ image: 'x', command: ['a'], args: ['b'], healthCheck: { type: 'command', command: ['c'], intervalMs: 1_500, timeoutMs: 700, retries: 4, startPeriodMs: 250 } });
    assert.deepEqual(p.options.Entrypoint, ['a']);
    assert.deepEqual(p.options.Cmd, ['b']);
    assert.deepEqual(p.options.Healthcheck, { Test: ['CMD', 'c'], Interval: 1_500_000_000, Timeout: 700_000_000, Retries: 4, StartPeriod: 250_000_000 });
  });

  it('publishes ports on publishAddress and picks the network by isolation', () => {
    const p = plan({ image: 'x', ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'udp' }] }, { publishAddress: '10.0.0.5' });
    assert.deepEqual(p.options.HostConfig.PortBindings, { '80/tcp': [{ HostIp: '10.0.0.5', HostPort: '' }], '53/udp': [{ HostIp: '10.0.0.5', HostPort: '' }] });
    assert.equal(p.network.kind, 'default');
    assert.equal(plan({ image: 'x', network: { type: 'Private', isolation: 'Strict' } }).network.kind, 'strict');
    assert.equal(plan({ image: 'x', network: { type: 'Private', isolation: 'Complete' } }).network.kind, 'none');
  });

  it('refuses what it cannot honour', () => {
    const code = (spec: RuntimeSpec): string => {
      try {
        plan(spec);
        return 'accepted';
      } catch (e) {
        return isWorkerManagerError(e) ? e.code : String(e);
      }
    };
    assert.equal(code({ command: ['x'] }), 'WM_ERR_VALIDATION');
    assert.equal(code({ image: 'x', network: { type: 'Private', isolation: 'Complete' }, ports: [{ containerPort: 1 }] }), 'WM_ERR_VALIDATION');
    assert.equal(code({ image: 'x', network: { type: 'Private', accessPolicies: [{ type: 'RequireTunnel' }] } }), 'WM_ERR_COMPATIBILITY');
    assert.equal(code({ image: 'x', volumes: [{ mountPath: '/s', source: { type: 'Secret', secretName: 'unresolved' } }] }), 'WM_ERR_VALIDATION');
    assert.equal(code({ image: 'x', volumes: [{ mountPath: '/c', source: { type: 'ConfigMap', name: 'undefined' } }] }), 'WM_ERR_VALIDATION');
    assert.equal(code({ image: 'x', volumes: [{ mountPath: 'relative', source: { type: 'EmptyDir' } }] }), 'WM_ERR_VALIDATION');
  });

  it('compares HostPath prefixes on normalised paths', () => {
    assert.equal(underPrefix('/srv/a/b', '/srv/a'), true);
    assert.equal(underPrefix('/srv/a', '/srv/a/'), true);
    assert.equal(underPrefix('/srv/ab', '/srv/a'), false);
    assert.equal(underPrefix('/srv/a/../../etc', '/srv/a'), false);
  });

  it('derives states: OOM and unhealthy win over the exit code; created and health starting are Starting with their reason', () => {
    assert.deepEqual(exitedState(137, true, undefined), { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 });
    assert.deepEqual(exitedState(137, false, 'unhealthy'), { phase: 'Failed', reason: 'Unhealthy', exitCode: 137 });
    assert.deepEqual(exitedState(0, false, undefined), { phase: 'Terminated', exitCode: 0 });
    assert.deepEqual(stateFromInspect({ Status: 'created' }), { phase: 'Starting', pendingReason: 'ContainerCreating' });
    assert.deepEqual(stateFromInspect({ Status: 'running', Health: { Status: 'starting' } }), { phase: 'Starting', pendingReason: 'HealthCheck' });
    assert.deepEqual(stateFromInspect({ Status: 'running', Health: { Status: 'healthy' } }), { phase: 'Running' });
    assert.deepEqual(stateFromInspect({ Status: 'paused' }), { phase: 'Paused' });
  });

  it('decodes multiplexed frames split at any byte', () => {
    const frame = (type: number, text: string): Buffer => {
      const body = Buffer.from(text);
      const head = Buffer.alloc(8);
      head[0] = type;
      head.writeUInt32BE(body.length, 4);
      return Buffer.concat([head, body]);
    };
    const all = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, '')]);
    for (let cut = 0; cut <= all.length; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
      assert.deepEqual(frames.map((f) => `${f.stream}:${f.payload.toString()}`), ['stdout:out\n', 'stderr:err\n', 'stdout:']);
    }
  });

  it('maps engine statuses to SDK codes', () => {
    const e = (statusCode: number) => Object.assign(new Error('x'), { statusCode, json: { message: 'engine says' } });
    assert.equal(mapDockerError(e(404), 'op').code, 'WM_ERR_NOT_FOUND');
    assert.equal(mapDockerError(e(409), 'op').code, 'WM_ERR_CONFLICT');
    assert.equal(mapDockerError(e(400), 'op').code, 'WM_ERR_VALIDATION');
    assert.equal(mapDockerError(e(500), 'op').code, 'WM_ERR_PROVIDER_SPECIFIC');
    const down = mapDockerError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'op');
    assert.equal(down.code, 'WM_ERR_NETWORK');
    assert.equal(down.transient, true);
  });
});
