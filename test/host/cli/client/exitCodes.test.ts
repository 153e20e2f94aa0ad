import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { EXIT, EXIT_CODE_TABLE, exitCodeFor } from '../../../../host/src/cli/client/exitCodes.ts';
import { hostError } from '../../../../host/src/errors.ts';
import { repoRoot } from '../../../helpers/startTestHost.ts';

describe('wm exit codes', () => {
  it('maps codes first, then categories', () => {
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_NOT_FOUND', 'x')), EXIT.notFound);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', 'x')), EXIT.notFound);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_CONFLICT', 'x')), EXIT.conflict);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_VALIDATION', 'x')), EXIT.usage);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_AUTHENTICATION', 'x')), EXIT.auth);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_AUTHORIZATION', 'x')), EXIT.auth);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', 'x')), EXIT.unavailable);
    assert.equal(exitCodeFor(hostError('HOST_ERR_CLI_UNREACHABLE', 'x')), EXIT.unavailable);
    assert.equal(exitCodeFor(hostError('HOST_ERR_CLI_CONFIG_INVALID', 'x')), EXIT.usage);
    assert.equal(exitCodeFor(hostError('HOST_ERR_CLI_WORKER_NOT_RUNNING', 'x')), EXIT.failure);
    assert.equal(exitCodeFor(new WorkerManagerError('WM_ERR_INTERNAL', 'x')), EXIT.failure);
    // An unknown code from a newer host still maps, by the category the API sent with it.
    assert.equal(exitCodeFor(new WorkerManagerError('HOST_ERR_FROM_THE_FUTURE', 'x', { category: 'Authorization' })), EXIT.auth);
    assert.equal(exitCodeFor(new Error('plain')), EXIT.failure);
  });

  it('documents every exit code in docs/operations.md', async () => {
    const doc = await readFile(path.join(repoRoot, 'docs', 'operations.md'), 'utf8');
    assert.deepEqual(EXIT_CODE_TABLE.map((r) => r.code), Object.values(EXIT));
    for (const row of EXIT_CODE_TABLE) assert.match(doc, new RegExp(`^\\| ${row.code} \\| ${row.meaning} \\|`, 'm'), `exit code ${row.code} is not in docs/operations.md`);
  });
});
