import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogChunk, LogOptions } from '@worker-manager/plugin-sdk';
import type { PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { within } from '../../helpers/waitFor.ts';
import { finalState, openHarness, tempStateDir } from './helpers.ts';

async function chunks(h: PluginHarness<'provider'>, workerId: string, options?: LogOptions): Promise<LogChunk[]> {
  const out: LogChunk[] = [];
  for await (const c of await h.proxy.getLogs(options === undefined ? { workerId } : { workerId, options })) out.push(c);
  return out;
}

describe('process plugin: logs', () => {
  it('gives one chunk per line with a seq that every thread agrees on; sinceSeq is inclusive, tailLines counts selected lines', async (t) => {
    const stateDir = await tempStateDir(t);
    const a = await openHarness(t, {}, stateDir);
    const b = await openHarness(t, {}, stateDir);
    await a.proxy.createWorker({ workerId: 'lines', spec: { command: ['sh', '-c', 'for i in 1 2 3; do echo out$i; done; echo err1 >&2; printf partial'] } });
    await finalState(a, 'lines');
    const all = await chunks(a, 'lines');
    assert.deepEqual(all.map((c) => [c.seq, c.stream, c.data]), [
      [0, 'stdout', 'out1\n'],
      [1, 'stdout', 'out2\n'],
      [2, 'stdout', 'out3\n'],
      [3, 'stdout', 'partial'],
      [4, 'stderr', 'err1\n'],
    ]);
    assert.deepEqual(await chunks(b, 'lines'), all, 'another thread reads the same sequence');
    assert.deepEqual((await chunks(b, 'lines', { sinceSeq: 2 })).map((c) => c.seq), [2, 3, 4]);
    assert.deepEqual((await chunks(b, 'lines', { tailLines: 2 })).map((c) => c.seq), [3, 4]);
    assert.deepEqual((await chunks(b, 'lines', { tailLines: 2, stderr: false })).map((c) => c.data), ['out3\n', 'partial']);
    assert.deepEqual((await chunks(b, 'lines', { stdout: false })).map((c) => c.data), ['err1\n']);
    assert.ok(all.every((c) => !Number.isNaN(Date.parse(c.timestamp))));
  });

  it('splits a very long line into chunks of at most 64 KiB', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'long', spec: { command: ['sh', '-c', 'head -c 150000 /dev/zero | tr "\\0" y; echo'] } });
    await finalState(h, 'long');
    const got = await chunks(h, 'long');
    assert.deepEqual(got.map((c) => c.data.length), [65_536, 65_536, 150_000 - 131_072 + 1]);
  });

  it('follow streams output as it comes, resumes from sinceSeq, and ends after the last line once the worker exits', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'ticks', spec: { command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick$i; sleep 0.1; done'] } });
    const seen: string[] = [];
    for await (const c of await h.proxy.getLogs({ workerId: 'ticks', options: { follow: true } })) seen.push(c.data);
    assert.deepEqual(seen, ['tick1\n', 'tick2\n', 'tick3\n', 'tick4\n', 'tick5\n']);
    const resumed: number[] = [];
    for await (const c of await h.proxy.getLogs({ workerId: 'ticks', options: { follow: true, sinceSeq: 3 } })) resumed.push(c.seq);
    assert.deepEqual(resumed, [3, 4], 'following a finished worker drains and ends');
  });

  it('a follower is released when its call is aborted', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'quiet', spec: { command: ['sleep', '600'] } });
    const controller = new AbortController();
    const stream = await h.proxy.getLogs({ workerId: 'quiet', options: { follow: true } }, { signal: controller.signal });
    const next = stream[Symbol.asyncIterator]().next();
    // Not a wait for a condition: the abort comes a moment later so that it usually finds the follower waiting for
    // output (the case under test); an earlier one on a loaded machine must release it just the same.
    setTimeout(() => controller.abort(), 100);
    // Not released, it would wait for the 600 s worker: an end well before that, while the worker still runs, can only
    // come from the abort.
    assert.deepEqual(await within(next, 'the aborted follower to end', 60_000), { done: true, value: undefined });
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: 'quiet' }), { phase: 'Running' }, 'the stream ended before the worker did');
    await h.proxy.terminateWorker({ workerId: 'quiet' });
  });
});
