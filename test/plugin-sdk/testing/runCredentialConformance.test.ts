import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { budget } from '../../helpers/waitFor.ts';
import type { Bug } from './fixtures/memoryCredentials.ts';

const runner = fileURLToPath(new URL('./fixtures/credentialConformanceRun.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../../', import.meta.url));
// One suite run in a child process (tsx compiling the SDK): a few seconds when idle, far more on a loaded machine.
const RUN_MS = budget(120_000);

/** Runs the suite in its own test process; returns the TAP result line of every test, by name. */
function runSuite(bugs: string): Promise<{ code: number; results: Map<string, boolean> }> {
  // Without NODE_TEST_CONTEXT the child reports TAP on stdout instead of talking to this test runner.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', runner], { cwd: repo, env: { ...env, BUGS: bugs }, timeout: RUN_MS }, (error, stdout) => {
      if (error?.killed === true) {
        reject(new assert.AssertionError({ message: `the suite with BUGS='${bugs}' did not finish within ${RUN_MS} ms; output so far:\n${stdout}` }));
        return;
      }
      const results = new Map<string, boolean>();
      for (const m of stdout.matchAll(/^\s*(not ok|ok) \d+ - (.+)$/gm)) results.set(m[2]!.replace(/ # .*$/, ''), m[1] === 'ok');
      resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), results });
    });
  });
}

/** Runs `jobs` at most `limit` at a time (two cores: more child processes only compete for them). */
async function pooled<T>(jobs: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  return out;
}

const T = {
  declares: 'declares secret.read, and secret.write.idempotent only with secret.write',
  unknownSecret: 'every operation on an unknown secret fails with WM_ERR_SECRET_NOT_FOUND',
  read: 'getSecret reads the current version when no version is given, by the stage name current, and by its version id',
  unknownVersion: 'getSecret of an unknown version or stage fails with WM_ERR_SECRET_VERSION_NOT_FOUND, as do the version operations',
  metadata: 'listVersions gives metadata only, and describe gives currentVersion and the number of versions',
  putNew: 'putSecret on a new name creates it with one version, active and current',
  putStages: 'putSecret makes the new version current, the old current deprecated and previous, and the old previous unstaged; each reads by id and stage',
  empty: 'putSecret of an empty value fails with WM_ERR_SECRET_INVALID_FORMAT and changes nothing',
  size: 'a value over the size limit (1024 bytes) fails with WM_ERR_SECRET_SIZE_LIMIT; a value at the limit is accepted',
  pending: 'createPendingVersion makes a version with status and stage pending, generates a value when given none, and leaves current untouched',
  repending: 'a second createPendingVersion revokes the earlier un-promoted pending version',
  testOk: 'testVersion answers ok: true for a good pending version, by id and by stage',
  testFails: 'a version that fails its test answers ok: false with a reason (the host reports WM_ERR_ROTATION_FAILED), and current is untouched',
  promote: 'promoteVersion makes the target active and current, the old current deprecated and previous, the old previous unstaged, and is idempotent',
  rotation: 'a full rotation (create pending, test, promote, revoke the old version) switches current reads exactly at promote',
  rollback: 'rollback: promoting the previous version makes it current again and the rolled-back version previous',
  promoteRevoked: 'promoteVersion of a revoked version fails with WM_ERR_CONFLICT and leaves current untouched',
  revokeCurrent: 'revokeVersion of the current version fails with WM_ERR_CONFLICT, by id and by stage, and the value stays readable',
  revoke: 'revokeVersion makes a version revoked with no stages, its value unreadable for good, and is idempotent',
  retryPut: 'putSecret retried with the same requestToken and value returns the same version and makes no other',
  retryConflict: 'putSecret with a used requestToken and a different value fails with WM_ERR_CONFLICT and changes nothing',
  retryPending: 'createPendingVersion retried with the same requestToken returns the same pending version, its value generated once',
  expired: 'getSecret of an expired secret fails with WM_ERR_SECRET_EXPIRED',
  denied: 'every operation fails with WM_ERR_PERMISSION_DENIED when the backend refuses the plugin, without the value in the error',
  unreachable: 'an unreachable backend fails reads and writes with WM_ERR_NETWORK, transient',
  logs: 'no value the suite wrote appears in the plugin logs',
} as const;

/** Each planted bug and exactly the tests it must fail: the rule it breaks, and the tests that read through that rule. */
const CAUGHT: Record<Bug, readonly (keyof typeof T)[]> = {
  'stage-not-moved': ['promote', 'rotation', 'rollback'],
  'wrong-stage-version': ['unknownVersion', 'putStages', 'promote', 'rotation', 'rollback', 'revoke'],
  // The empty-value test fails too: its check that a refused write created nothing reads the unknown name.
  'error-without-code': ['unknownSecret', 'empty'],
  'value-in-error': ['size'],
  'retry-makes-version': ['retryPut', 'retryConflict', 'retryPending'],
  'failed-test-throws': ['testFails'],
  'revoked-readable': ['repending', 'rotation', 'revoke'],
  'denied-as-not-found': ['denied'],
};

describe('runCredentialConformance', () => {
  it('passes a credential plugin that keeps the contract, and fails exactly the tests of each planted bug', { timeout: budget(600_000) }, async () => {
    const bugs = Object.keys(CAUGHT) as Bug[];
    const [clean, ...buggy] = await pooled([() => runSuite(''), ...bugs.map((bug) => () => runSuite(bug))], 2);

    assert.equal(clean!.code, 0, `clean run: ${JSON.stringify([...clean!.results])}`);
    for (const name of Object.values(T)) assert.equal(clean!.results.get(name), true, `clean run: '${name}' ran and passed`);

    bugs.forEach((bug, i) => {
      const run = buggy[i]!;
      assert.equal(run.code, 1, `BUGS=${bug}: the run fails`);
      const failed = Object.entries(T)
        .filter(([, name]) => run.results.get(name) === false)
        .map(([key]) => key)
        .sort();
      assert.deepEqual(failed, [...CAUGHT[bug]].sort(), `BUGS=${bug}: the failing tests`);
      for (const name of Object.values(T)) assert.ok(run.results.has(name), `BUGS=${bug}: '${name}' ran`);
    });
  });
});
