import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isQuotaCompatible, quotaShortfalls } from '@worker-manager/plugin-sdk';

const available = { cpuMillicores: 2_000, memoryMiB: 1_024, gpu: 0, storageMiB: 10_000 };

describe('quotaShortfalls / isQuotaCompatible', () => {
  it('an empty quota and a quota within every amount fit', () => {
    assert.deepEqual(quotaShortfalls({}, available), []);
    assert.equal(isQuotaCompatible({ cpuMillicores: 2_000, memoryMiB: 1_024, gpu: 0, storageMiB: 10_000 }, available), true, 'equal to available fits');
  });

  it('lists each resource that does not fit, with requested and available', () => {
    assert.deepEqual(quotaShortfalls({ cpuMillicores: 2_001, memoryMiB: 512, gpu: 1 }, available), [
      { resource: 'cpuMillicores', requested: 2_001, available: 2_000 },
      { resource: 'gpu', requested: 1, available: 0 },
    ]);
    assert.equal(isQuotaCompatible({ storageMiB: 10_001 }, available), false);
    assert.equal(isQuotaCompatible({ memoryMiB: 1_025 }, available), false);
  });
});
