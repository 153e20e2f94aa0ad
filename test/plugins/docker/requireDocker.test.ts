import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { collectOutput, finished } from '../../helpers/childProcess.ts';

const fixture = fileURLToPath(new URL('./fixtures/needsDocker.fixture.ts', import.meta.url));

/** Runs the fixture test file in a child node:test (asynchronously, so both cases run at once). */
async function runWithoutDocker(ci: string | undefined): Promise<{ status: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], DOCKER_HOST: 'unix:///tmp/wm-no-docker-here.sock' };
  if (ci !== undefined) env['CI'] = ci;
  if (process.env['WM_TEST_TIME_FACTOR'] !== undefined) env['WM_TEST_TIME_FACTOR'] = process.env['WM_TEST_TIME_FACTOR'];
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', fixture], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // A child node:test run compiles TypeScript: seconds idle, far more on a loaded machine.
  const r = await finished(child, `the fixture test run (CI=${ci ?? 'unset'})`, collectOutput(child), 90_000);
  return { status: r.code, out: `${r.stdout}${r.stderr}` };
}

describe('requireDocker (TESTING.md: fail in CI, skip loudly elsewhere)', { concurrency: true }, () => {
  it('fails a Docker test file when the engine is unreachable and CI=true', async () => {
    const r = await runWithoutDocker('true');
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /Docker Engine is reachable \(required in CI\)/);
    assert.match(r.out, /npm run services:up/);
  });

  it('skips with a loud message naming npm run services:up outside CI', async () => {
    const r = await runWithoutDocker(undefined);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SKIPPING Docker tests.*npm run services:up/);
    assert.match(r.out, /needs docker .*# Docker Engine or image local\/busybox:latest not available/, 'the suite is reported as skipped, with the reason');
    assert.match(r.out, /fail 0/);
  });
});
