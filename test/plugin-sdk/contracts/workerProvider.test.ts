import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CAPABILITIES, capabilitiesForSpec, WorkerProviderContract } from '@worker-manager/plugin-sdk';

describe('capabilitiesForSpec', () => {
  it('a plain command needs nothing beyond the operation', () => {
    assert.deepEqual(capabilitiesForSpec({ command: ['true'], env: { A: 'b' }, labels: { x: 'y' }, resources: { storageMiB: 10, gpu: 0 }, network: { type: 'Private', isolation: 'Default' } }), []);
  });

  it('names the capability of every feature the spec uses', () => {
    const needed = capabilitiesForSpec({
      image: 'busybox',
      resources: { memoryMiB: 64, cpuMillicores: 500, gpu: 1 },
      ports: [{ containerPort: 80 }],
      volumes: [{ mountPath: '/d', source: { type: 'EmptyDir' } }],
      network: { type: 'Isolated', isolation: 'Strict' },
      healthCheck: { type: 'tcp', port: 80 },
      secretRefs: [{ name: 's', mount: 'env' }, { name: 't', mount: 'volume' }],
    });
    assert.deepEqual(new Set(needed), new Set([
      'worker.image', 'worker.resources.memory', 'worker.resources.cpu', 'worker.resources.gpu', 'worker.ports', 'worker.volumes',
      'worker.network.isolation', 'worker.healthCheck', 'worker.secrets.env', 'worker.secrets.file',
    ]));
    assert.deepEqual(capabilitiesForSpec({ network: { type: 'Isolated', isolation: 'Complete' } }), ['worker.network.isolation']);
  });

  it('counts resolved secret mounts too', () => {
    assert.deepEqual(capabilitiesForSpec({ command: ['x'] }, [{ strategy: 'file', name: 'a', version: '1', path: 'p', value: 'v' }]), ['worker.secrets.file']);
    assert.deepEqual(capabilitiesForSpec({ command: ['x'] }, [{ strategy: 'env', name: 'a', version: '1', envName: 'A', value: 'v' }]), ['worker.secrets.env']);
  });

  it('every operation of the contract names a known capability of the worker-provider contract', () => {
    for (const [name, op] of Object.entries(WorkerProviderContract.operations)) {
      const info = (CAPABILITIES as Record<string, { contract: string }>)[op.capability];
      assert.equal(info?.contract, 'worker-provider', name);
    }
  });
});
