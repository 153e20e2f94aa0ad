import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { budget } from '../../helpers/waitFor.ts';

const runner = fileURLToPath(new URL('./fixtures/conformanceRun.ts', import.meta.url));
const repo = fileURLToPath(new URL('../../../', import.meta.url));
// Two suite runs in child processes (tsx compiling the SDK in each): seconds when idle, far more on a loaded machine.
const RUN_MS = budget(90_000);

/** Runs the suite in its own test process; returns the TAP result line of every test, by name. */
function runSuite(bugs: string): Promise<{ code: number; results: Map<string, boolean> }> {
  // Without NODE_TEST_CONTEXT the child reports TAP on stdout instead of talking to this test runner.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsx', '--test', '--test-reporter=tap', runner], { cwd: repo, env: { ...env, BUGS: bugs }, timeout: RUN_MS }, (error, stdout) => {
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

describe('runProviderConformance', () => {
  it('passes a provider that keeps the contract, and fails exactly the tests of the contract rules it breaks', { timeout: budget(120_000) }, async () => {
    const [clean, buggy] = await Promise.all([runSuite(''), runSuite('terminate-not-idempotent,create-not-idempotent,no-terminated-event,never-runs')]);

    assert.equal(clean.code, 0, `clean run: ${JSON.stringify([...clean.results])}`);
    const expected = [
      'declares worker.lifecycle',
      'createWorker returns once the worker is accepted (Creating, Starting or Running), and the worker then reports Running',
      'listWorkers finds the worker and filters by label',
      'terminateWorker is idempotent, and succeeds for a worker that never existed',
      'operations on an unknown worker fail with WM_ERR_NOT_FOUND',
      'a malformed workerId is WM_ERR_VALIDATION',
      'emits lifecycle events: WorkerCreated, then WorkerTerminated after terminate',
    ];
    for (const name of expected) assert.equal(clean.results.get(name), true, `clean: ${name}`);
    const refusals = [...clean.results.keys()].find((n) => n.startsWith('refuses undeclared operations with WM_ERR_COMPATIBILITY'));
    assert.ok(refusals?.includes('executeCommand') && refusals.includes('getLogs'), `every undeclared operation is tried: ${refusals}`);
    assert.equal(clean.results.has('executeCommand returns exit code, stdout and stderr, and honours timeoutMs'), false, 'optional tests follow the capabilities');

    assert.equal(buggy.code, 1);
    assert.equal(buggy.results.get('terminateWorker is idempotent, and succeeds for a worker that never existed'), false);
    assert.equal(buggy.results.get('createWorker is idempotent: the same workerId gives the same worker and one resource'), false);
    assert.equal(buggy.results.get('emits lifecycle events: WorkerCreated, then WorkerTerminated after terminate'), false);
    assert.equal(buggy.results.get('createWorker returns once the worker is accepted (Creating, Starting or Running), and the worker then reports Running'), false);
    assert.equal(buggy.results.get('declares worker.lifecycle'), true);
    assert.equal(buggy.results.get('a malformed workerId is WM_ERR_VALIDATION'), true);
  });
});
