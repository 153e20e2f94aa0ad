import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isWorkerManagerError, MAX_ARG_LENGTH, MAX_ENV_VALUE_LENGTH, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import { openHarness } from './helpers.ts';

// What the system refuses for its size although the contract's field limits allow it. Regression: E2BIG came back as
// WM_ERR_VALIDATION at '/spec', naming no field (ENAMETOOLONG already named /spec/workingDir: pinned here too); an
// unknown signal name of any length was quoted whole in the message, which goes to the host log.

async function refusal(call: Promise<unknown>): Promise<WorkerManagerError> {
  try {
    await call;
  } catch (error) {
    assert.ok(isWorkerManagerError(error), String(error));
    return error;
  }
  return assert.fail('the call was not refused');
}

const strings = (n: number, length: number): string[] => Array.from({ length: n }, () => 'x'.repeat(length));

/** No value quoted: the message names the field and sizes only. */
function quotesNothing(e: WorkerManagerError): void {
  assert.ok(e.message.length < 300 && !e.message.includes('xxxxxxxx'), `the message quotes no value: ${e.message.slice(0, 300)}`);
}

describe('process plugin: requests the system refuses for their size', () => {
  it('arguments over ARG_MAX together (E2BIG): WM_ERR_VALIDATION naming /spec/args, nothing left behind', async (t) => {
    const h = await openHarness(t);
    // 80 arguments of 32,000 characters: 2.5 MB, over ARG_MAX (2 MiB); each one alone is within every limit.
    const e = await refusal(h.proxy.createWorker({ workerId: 'args', spec: { command: ['true'], args: strings(80, MAX_ARG_LENGTH) } }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message);
    assert.equal(e.details?.['instancePath'], '/spec/args');
    assert.equal(e.details?.['errorCode'], 'E2BIG');
    quotesNothing(e);
    assert.equal(existsSync(path.join(h.stateDir, 'workers', 'args')), false);
    assert.deepEqual(await readdir(path.join(h.stateDir, 'creating')), []);
    assert.equal((await h.proxy.getCapacity({})).activeWorkers, 0, 'its admission was given back');
  });

  it('environment over ARG_MAX together (E2BIG): WM_ERR_VALIDATION naming /spec/env', async (t) => {
    const h = await openHarness(t);
    const env = Object.fromEntries(strings(80, MAX_ENV_VALUE_LENGTH).map((v, i) => [`VAR_${i}`, v]));
    const e = await refusal(h.proxy.createWorker({ workerId: 'env', spec: { command: ['true'], env } }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message);
    assert.equal(e.details?.['instancePath'], '/spec/env');
    quotesNothing(e);
  });

  it('an exec command over ARG_MAX (E2BIG): WM_ERR_VALIDATION naming /command', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'host', spec: { command: ['sleep', '600'] } });
    const e = await refusal(h.proxy.executeCommand({ workerId: 'host', command: ['true', ...strings(80, MAX_ARG_LENGTH)] }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message);
    assert.equal(e.details?.['instancePath'], '/command');
    quotesNothing(e);
  });

  it('a workingDir with a name over 255 bytes (ENAMETOOLONG): WM_ERR_VALIDATION naming /spec/workingDir', async (t) => {
    const h = await openHarness(t);
    const e = await refusal(h.proxy.createWorker({ workerId: 'deep', spec: { command: ['true'], workingDir: `a/${'x'.repeat(300)}` } }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message);
    assert.equal(e.details?.['instancePath'], '/spec/workingDir');
    assert.equal(e.details?.['errorCode'], 'ENAMETOOLONG');
    quotesNothing(e);
    assert.equal(existsSync(path.join(h.stateDir, 'workers', 'deep')), false);
  });

  it('an unknown signal name of 100,000 characters is refused quoting at most 512 bytes of it', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'sig', spec: { command: ['sleep', '600'] } });
    const e = await refusal(h.proxy.refreshSecrets({ workerId: 'sig', secrets: [], signal: `SIG${'X'.repeat(100_000)}` }));
    assert.equal(e.code, 'WM_ERR_VALIDATION');
    assert.ok(e.message.length < 1_024, `the message is ${e.message.length} characters`);
    assert.match(e.message, /truncated: 100003 bytes in all/);
  });
});
