import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError, MAX_ARG_LENGTH, MAX_ENV_VALUE_LENGTH, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { docker, IMAGE, openHarness } from './helpers.ts';

const skip = await requireDocker();

// Input the contract accepts (each field within its limit) that the engine, or the kernel inside the container,
// cannot take. Regressions: a command line and environment over ARG_MAX were created and started, and the container
// exited 1 ("exec /bin/true: argument list too long" in its log); over the engine's 1 MB request-line limit they were a
// 431 (dockerode copied the whole create body into the query string); a workingDir with a 300-byte name was a 500
// quoting the whole path; an entrypoint of 32,000 characters came back in a 400 quoting it, and the message went to
// the host log with every failed create.

/** The error a call was refused with, checked to be a worker-manager error. */
async function refusal(call: Promise<unknown>): Promise<WorkerManagerError> {
  try {
    await call;
  } catch (error) {
    assert.ok(isWorkerManagerError(error), String(error));
    return error;
  }
  return assert.fail('the call was not refused');
}

/** `n` strings of `length` characters. */
const strings = (n: number, length: number, c = 'x'): string[] => Array.from({ length: n }, () => c.repeat(length));

describe('docker provider: input the engine or the kernel cannot take', { skip }, () => {
  it('arguments or environment over what a process can be started with: WM_ERR_VALIDATION naming the list, before any container is made', async (t) => {
    const h = await openHarness(t);
    // 80 arguments of 32,000 characters: 2.5 MB, over ARG_MAX (2 MiB).
    const args = await refusal(h.proxy.createWorker({ workerId: 'args', spec: { image: IMAGE, command: ['true'], args: strings(80, MAX_ARG_LENGTH) } }));
    assert.equal(args.code, 'WM_ERR_VALIDATION', args.message);
    assert.equal(args.details?.['instancePath'], '/spec/args');
    assert.equal(args.details?.['errorCode'], 'E2BIG');
    const env = Object.fromEntries(strings(80, MAX_ENV_VALUE_LENGTH).map((v, i) => [`VAR_${i}`, v]));
    const envRefusal = await refusal(h.proxy.createWorker({ workerId: 'env', spec: { image: IMAGE, command: ['true'], env } }));
    assert.equal(envRefusal.code, 'WM_ERR_VALIDATION', envRefusal.message);
    assert.equal(envRefusal.details?.['instancePath'], '/spec/env');
    for (const e of [args, envRefusal]) assert.ok(e.message.length < 300 && !e.message.includes('xxxxxxxx'), `no value quoted: ${e.message.slice(0, 300)}`);
    const containers = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${h.hostId}`] } });
    assert.deepEqual(containers, [], 'no container was made');
  });

  it('an environment over the engine request-line limit (1 MB) but within ARG_MAX reaches the container whole', async (t) => {
    const h = await openHarness(t);
    // 40 variables of 30,000 characters: 1.2 MB, which dockerode also put in the URL (431 from the engine).
    const env = Object.fromEntries(strings(40, 30_000).map((v, i) => [`VAR_${i}`, v]));
    const w = await h.proxy.createWorker({ workerId: 'wide', spec: { image: IMAGE, command: ['sleep', '600'], env } });
    assert.equal(w.state.phase, 'Running');
    const seen = await h.proxy.executeCommand({ workerId: 'wide', command: ['sh', '-c', 'printf %s "$VAR_39" | wc -c'] });
    assert.equal(seen.stdout.trim(), '30000');
  });

  it('a workingDir with a name over 255 bytes: WM_ERR_VALIDATION naming /spec/workingDir (the engine answered a 500 quoting the path)', async (t) => {
    const h = await openHarness(t);
    const e = await refusal(h.proxy.createWorker({ workerId: 'deep', spec: { image: IMAGE, command: ['true'], workingDir: `/work/${'w'.repeat(300)}` } }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message);
    assert.equal(e.details?.['instancePath'], '/spec/workingDir');
    assert.equal(e.details?.['errorCode'], 'ENAMETOOLONG');
    assert.ok(!e.message.includes('wwwwwwww'), e.message);
  });

  it('an engine refusal quoting a 32,000-character entrypoint carries at most 512 bytes of it, and says how long it was', async (t) => {
    // Without docker-init the engine itself runs the entrypoint, and refuses the start quoting it (with init, the
    // container starts and its init reports the failure in the worker's log).
    const h = await openHarness(t, { init: false });
    const e = await refusal(h.proxy.createWorker({ workerId: 'long-entry', spec: { image: IMAGE, command: ['c'.repeat(MAX_ARG_LENGTH)] } }));
    assert.equal(e.code, 'WM_ERR_VALIDATION', e.message.slice(0, 300));
    assert.ok(e.message.length < 1_024, `the message is ${e.message.length} characters`);
    assert.match(e.message, /executable file not found/, 'the start of the engine answer is kept');
    assert.match(e.message, /…\[truncated: \d{5,} bytes in all\]/);
    const containers = await docker.listContainers({ all: true, filters: { label: [`worker-manager/host=${h.hostId}`] } });
    assert.deepEqual(containers, [], 'the container that could not start is gone');
  });
});
