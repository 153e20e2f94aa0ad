import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { permissionFlag, restrictedExecArgv } from '../../../host/src/sandbox/threadExecArgv.ts';

describe('threadExecArgv', () => {
  it('picks the permission flag by Node version', () => {
    assert.equal(permissionFlag('20.20.2'), '--experimental-permission');
    assert.equal(permissionFlag('22.12.0'), '--experimental-permission');
    assert.equal(permissionFlag('22.13.0'), '--permission');
    assert.equal(permissionFlag('23.5.0'), '--permission');
    assert.equal(permissionFlag('24.1.0'), '--permission');
  });

  it('grants reads of the given folders only, and nothing else', () => {
    assert.deepEqual(restrictedExecArgv(['/repo/node_modules/piscina', '/tmp/bundle/'], '24.1.0'), [
      '--permission',
      '--allow-fs-read=/repo/node_modules/piscina/*',
      '--allow-fs-read=/tmp/bundle/*',
    ]);
  });

  it('silences the experimental warning where the permission model is experimental', () => {
    assert.deepEqual(restrictedExecArgv(['/a'], '20.20.2'), ['--experimental-permission', '--allow-fs-read=/a/*', '--disable-warning=ExperimentalWarning']);
  });
});
