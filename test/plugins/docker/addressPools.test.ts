import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError, SDK_ERROR_CODES } from '@worker-manager/plugin-sdk';
import { mapDockerError, statusOf } from '../../../plugins/docker/src/dockerErrors.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { docker, newHostId } from './helpers.ts';

const skip = await requireDocker();

// Regression: Strict isolation stopped at about 29 workers on a default engine ("could not find an available,
// non-overlapping IPv4 address pool among the defaults to assign to the network") and the caller was told
// WM_ERR_NOT_FOUND (the engine answers 404: libnetwork's NotFoundError), as if the worker did not exist.
//
// Running the engine's pools dry would break every other test sharing it (and a CI run on the same engine), so the
// engine is asked for what gives the same answer from the same code path without taking a pool: an IPv6 network with
// no subnet, on an engine that has no default IPv6 pools (20.10 has none). Only the IP version in the message differs.

describe('docker provider: no address pool left for a network', { skip }, () => {
  it("the engine's refusal is WM_ERR_RESOURCE_EXHAUSTED (transient), not WM_ERR_NOT_FOUND", async (t) => {
    const name = `wm-${newHostId('pools')}-probe`;
    let refusal: unknown;
    try {
      const made = await docker.createNetwork({ Name: name, Driver: 'bridge', Internal: true, EnableIPv6: true, CheckDuplicate: true });
      t.after(() => made.remove().catch(() => {}));
    } catch (error) {
      refusal = error;
    }
    if (refusal === undefined) {
      t.skip('this engine has default IPv6 address pools: it made the network, so it cannot show the refusal without running its IPv4 pools dry');
      return;
    }
    assert.equal(statusOf(refusal), 404, 'the engine answers 404');
    assert.match(String((refusal as { json?: { message?: string } }).json?.message), /could not find an available, non-overlapping IPv6 address pool among the defaults/);

    const mapped = mapDockerError(refusal, 'create network', { network: name });
    assert.ok(isWorkerManagerError(mapped));
    assert.equal(mapped.code, 'WM_ERR_RESOURCE_EXHAUSTED', mapped.message);
    assert.equal(mapped.transient, true, 'pools come back as Strict workers go: worth a retry later');
    assert.equal(SDK_ERROR_CODES.WM_ERR_RESOURCE_EXHAUSTED.category, 'ResourceLimits');
    assert.equal(mapped.details?.['reason'], 'AddressPoolsExhausted');
    assert.equal(mapped.details?.['network'], name);
    assert.match(mapped.message, /default-address-pools/, 'the message says what to raise');
  });
});
