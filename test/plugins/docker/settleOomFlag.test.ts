import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settleOomFlag } from '../../../plugins/docker/src/containerState.ts';

type Info = { State: { Status: string; ExitCode?: number; OOMKilled?: boolean; FinishedAt?: string }; HostConfig?: { Memory?: number } };
const exited = (oom: boolean, finishedAgoMs: number, memory = 16 * 1024 * 1024): Info => ({
  State: { Status: 'exited', ExitCode: 137, OOMKilled: oom, FinishedAt: new Date(Date.now() - finishedAgoMs).toISOString() },
  HostConfig: { Memory: memory },
});

describe('settleOomFlag (dockerd can record an OOM kill after the exit)', () => {
  it('inspects again while a fresh exit 137 of a memory-limited container lacks the flag, and returns the flagged answer', async () => {
    const answers = [exited(false, 10), exited(true, 10)];
    let calls = 0;
    const settled = await settleOomFlag(exited(false, 0), async () => answers[calls++] ?? assert.fail('inspected too often'));
    assert.equal(settled.State.OOMKilled, true);
    assert.equal(calls, 2);
  });

  it('takes the first answer when it cannot be an OOM kill waiting for its flag', async () => {
    const never = async (): Promise<Info> => assert.fail('should not inspect again');
    assert.equal((await settleOomFlag(exited(false, 5_000), never)).State.OOMKilled, false, 'long exited: a plain SIGKILL');
    assert.equal((await settleOomFlag(exited(false, 0, 0), never)).State.OOMKilled, false, 'no memory limit');
    assert.equal((await settleOomFlag({ State: { Status: 'exited', ExitCode: 1, FinishedAt: new Date().toISOString() }, HostConfig: { Memory: 1 } }, never)).State.ExitCode, 1);
    assert.equal((await settleOomFlag(exited(true, 0), never)).State.OOMKilled, true);
  });
});
