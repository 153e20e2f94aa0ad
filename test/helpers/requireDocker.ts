import { it } from 'node:test';
import Docker from 'dockerode';
import { within } from './waitFor.ts';

const START_COMMAND = 'npm run services:up';

async function reachable(): Promise<string | undefined> {
  const docker = new Docker({ socketPath: process.env['DOCKER_HOST']?.startsWith('unix://') === true ? process.env['DOCKER_HOST'].slice(7) : '/var/run/docker.sock' });
  try {
    // An absent engine fails at once (no socket); the budget only bounds an engine that hangs, which on a loaded
    // machine can take seconds to answer even when healthy.
    await within(docker.ping(), 'the Docker Engine to answer a ping', 30_000);
    await docker.getImage('local/busybox:latest').inspect();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Checks that the Docker Engine (and the test image local/busybox:latest) is there, once per test file. Use the
 * result as the `skip` option of the file's top-level describe.
 *
 * - Engine reachable: returns `false` (nothing skipped).
 * - Unreachable with `CI=true`: registers a failing test naming the cause and returns `false`, so every Docker test
 *   also runs and fails: CI never skips them (../shared/TESTING.md).
 * - Unreachable elsewhere: prints a loud message naming `npm run services:up` and returns that message, which
 *   skips the suite.
 */
export async function requireDocker(): Promise<string | false> {
  const problem = await reachable();
  if (problem === undefined) return false;
  const message = `Docker Engine or image local/busybox:latest not available (${problem}); start them with \`${START_COMMAND}\``;
  if (process.env['CI'] === 'true') {
    it('Docker Engine is reachable (required in CI)', () => {
      throw new Error(message);
    });
    return false;
  }
  console.error(`\n!!! SKIPPING Docker tests: ${message}\n`);
  return message;
}
