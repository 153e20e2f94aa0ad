import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError, lookupErrorCode, registerErrorCatalog, SDK_ERROR_CODES, toWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';

describe('WorkerManagerError', () => {
  it('takes category, severity and transient from the catalog', () => {
    const e = new WorkerManagerError('WM_ERR_TIMEOUT', 'slow');
    assert.deepEqual([e.code, e.category, e.severity, e.transient], ['WM_ERR_TIMEOUT', 'TransientInfrastructure', 'Medium', true]);
    const v = new WorkerManagerError('WM_ERR_VALIDATION', 'bad');
    assert.deepEqual([v.category, v.severity, v.transient], ['ClientValidation', 'Low', false]);
  });

  for (const [how, copy] of [
    ['JSON', (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown],
    ['structuredClone', (x: unknown) => structuredClone(x)],
  ] as const) {
    it(`round-trips through ${how}: code, category, severity, transient, details and cause survive`, () => {
      const cause = new WorkerManagerError('WM_ERR_NETWORK', 'connection reset', { details: { host: 'docker' } });
      const e = new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', 'create failed', {
        details: { workerId: 'w1', attempts: 3 },
        cause,
        transient: true,
        severity: 'High',
      });
      const back = WorkerManagerError.fromJSON(copy(e.toJSON()) as ReturnType<WorkerManagerError['toJSON']>);
      assert.ok(back instanceof WorkerManagerError);
      assert.deepEqual(
        [back.code, back.category, back.severity, back.transient, back.message, back.details],
        ['WM_ERR_PROVIDER_SPECIFIC', 'Internal', 'High', true, 'create failed', { workerId: 'w1', attempts: 3 }],
      );
      assert.ok(back.cause instanceof WorkerManagerError);
      assert.deepEqual([back.cause.code, back.cause.transient, back.cause.details], ['WM_ERR_NETWORK', true, { host: 'docker' }]);
    });
  }

  it('keeps the stack and non-worker-manager causes on this side of the boundary', () => {
    const data = new WorkerManagerError('WM_ERR_INTERNAL', 'boom', { cause: new Error('private detail') }).toJSON();
    assert.equal('stack' in data, false);
    assert.equal(data.cause, undefined);
  });

  it('instanceof works for an error made by another copy of the SDK (brand, not prototype)', () => {
    class OtherCopyError extends Error {
      readonly code = 'WM_ERR_NOT_FOUND';
    }
    const foreign = new OtherCopyError('from a bundled SDK');
    Object.defineProperty(foreign, Symbol.for('worker-manager.error'), { value: true });
    assert.ok(foreign instanceof WorkerManagerError);
    assert.ok(isWorkerManagerError(foreign));
    assert.equal(toWorkerManagerError(foreign), foreign, 'a branded error is passed through as is');
    assert.equal(new Error('plain') instanceof WorkerManagerError, false);
    assert.equal(isWorkerManagerError({ code: 'WM_ERR_NOT_FOUND' }), false, 'a look-alike without the brand is not one');
  });

  it('toWorkerManagerError turns anything thrown into WM_ERR_INTERNAL (or a chosen code), keeping the message only', () => {
    const source = Object.assign(new TypeError('x is undefined'), { secret: 'hunter2' });
    const e = toWorkerManagerError(source);
    assert.deepEqual([e.code, e.message, e.details], ['WM_ERR_INTERNAL', 'x is undefined', { errorName: 'TypeError' }]);
    assert.equal(e.cause, source);
    assert.ok(!JSON.stringify(e.toJSON()).includes('hunter2'));
    assert.equal(toWorkerManagerError('oops').message, 'non-error value thrown: string');
    assert.equal(toWorkerManagerError(new Error('net'), 'WM_ERR_NETWORK').transient, true);
  });

  it('registered catalogs give codes of other packages their category', () => {
    assert.equal(lookupErrorCode('TEST_ERR_SDK_SUITE'), undefined);
    registerErrorCatalog({ TEST_ERR_SDK_SUITE: { category: 'Configuration', severity: 'High', transient: false, description: 'd', howToSolve: 'h' } });
    assert.equal(new WorkerManagerError('TEST_ERR_SDK_SUITE', 'm').category, 'Configuration');
    assert.equal(new WorkerManagerError('NOT_A_CODE', 'm').category, 'Internal', 'unknown codes are Internal');
  });

  it('every SDK code has a description and a way to solve it', () => {
    for (const [code, spec] of Object.entries(SDK_ERROR_CODES)) {
      assert.match(code, /^WM_ERR_[A-Z_]+$/);
      assert.ok(spec.description.length > 10 && spec.howToSolve.length > 10, code);
    }
  });
});
