import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { createWorkerBody, parseCpu, parseMemory } from '../../../../host/src/cli/commands/createWorkerBody.ts';

describe('wm workers create: the request from a spec file and flags', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-cli-spec-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('builds a spec from flags: the words after -- are the command, --cmd makes them its arguments', async () => {
    assert.deepEqual(await createWorkerBody({ env: ['A=1', 'B=x=y'], label: ['team=ci'], provider: 'local', cpu: '500m', memory: '1Gi', timeout: 5000 }, ['sh', '-c', 'echo hi']), {
      spec: { command: ['sh'], args: ['-c', 'echo hi'], env: { A: '1', B: 'x=y' }, resources: { cpuMillicores: 500, memoryMiB: 1024 }, timeoutMs: 5000 },
      labels: { team: 'ci' },
      provider: 'local',
    });
    assert.deepEqual(await createWorkerBody({ image: 'local/busybox', cmd: 'sleep' }, ['30']), { spec: { image: 'local/busybox', command: ['sleep'], args: ['30'] } });
  });

  it('reads a YAML RuntimeSpec or a JSON request; flags win, env and labels merge key by key', async () => {
    const yaml = path.join(dir, 'spec.yaml');
    await writeFile(yaml, 'command: [sleep]\nargs: ["60"]\nenv: { A: from-file, B: kept }\n');
    assert.deepEqual(await createWorkerBody({ file: yaml, env: ['A=from-flag'] }, []), { spec: { command: ['sleep'], args: ['60'], env: { A: 'from-flag', B: 'kept' } } });
    const json = path.join(dir, 'request.json');
    await writeFile(json, JSON.stringify({ provider: 'a', workerId: 'w-file', labels: { x: '1', y: '2' }, spec: { command: ['true'] } }));
    assert.deepEqual(await createWorkerBody({ file: json, provider: 'b', label: ['y=3'] }, ['echo', 'over']), {
      provider: 'b', workerId: 'w-file', labels: { x: '1', y: '3' }, spec: { command: ['echo'], args: ['over'] },
    });
  });

  it('refuses what the API would refuse, with the path, before sending anything', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'command: [sleep]\ncolour: blue\n');
    await assert.rejects(createWorkerBody({ file: bad }, []), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_VALIDATION' && e.details?.['path'] === '/spec/colour');
    await assert.rejects(createWorkerBody({ workerId: 'Not A DNS Label' }, ['true']), (e: unknown) => isWorkerManagerError(e) && e.details?.['path'] === '/workerId');
    await assert.rejects(createWorkerBody({ env: ['NOEQUALS'] }, ['true']), /--env takes KEY=VALUE/);
    await assert.rejects(createWorkerBody({ file: path.join(dir, 'missing.yaml') }, []), /cannot read the spec file .*ENOENT/);
    const list = path.join(dir, 'list.yaml');
    await writeFile(list, '- a\n');
    await assert.rejects(createWorkerBody({ file: list }, []), /must hold an object/);
  });

  it('parses CPU and memory sizes', () => {
    assert.equal(parseCpu('0.5'), 500);
    assert.equal(parseCpu('2'), 2000);
    assert.equal(parseCpu('250m'), 250);
    assert.throws(() => parseCpu('0.0001'), /--cpu/);
    assert.throws(() => parseCpu('lots'), /--cpu/);
    assert.equal(parseMemory('512'), 512);
    assert.equal(parseMemory('512Mi'), 512);
    assert.equal(parseMemory('1.5G'), 1536);
    assert.throws(() => parseMemory('1TB'), /--memory/);
  });
});
