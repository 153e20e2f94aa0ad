import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('./fixtures/needsDocker.fixture.ts', import.meta.url));

function runWithoutDocker(ci: string | undefined): { status: number | null; out: string } {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], DOCKER_HOST: 'unix:///tmp/wm-no-docker-here.sock' };
  if (ci !== undefined) env['CI'] = ci;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', fixture], { env, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('requireDocker (TESTING.md: fail in CI, skip loudly elsewhere)', { concurrency: true }, () => {
  it('fails a Docker test file when the engine is unreachable and CI=true', () => {
    const r = runWithoutDocker('true');
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /Docker Engine is reachable \(required in CI\)/);
    assert.match(r.out, /npm run services:up/);
  });

  it('skips with a loud message naming npm run services:up outside CI', () => {
    const r = runWithoutDocker(undefined);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SKIPPING Docker tests.*npm run services:up/);
    assert.match(r.out, /needs docker .*# Docker Engine or image local\/busybox:latest not available/, 'the suite is reported as skipped, with the reason');
    assert.match(r.out, /fail 0/);
  });
});
