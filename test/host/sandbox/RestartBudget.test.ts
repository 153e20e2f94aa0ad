import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestartBudget } from '../../../host/src/sandbox/RestartBudget.ts';

describe('RestartBudget', () => {
  it('doubles the delay per restart in the window, capped, and refuses past maxRestarts', () => {
    const budget = new RestartBudget({ maxRestarts: 4, windowMs: 1_000, backoffMs: 100, maxBackoffMs: 500 });
    assert.deepEqual([budget.next(0), budget.next(10), budget.next(20), budget.next(30)], [100, 200, 400, 500]);
    assert.equal(budget.next(40), undefined);
    assert.equal(budget.used, 4);
  });

  it('forgets restarts older than the window', () => {
    const budget = new RestartBudget({ maxRestarts: 1, windowMs: 1_000, backoffMs: 50, maxBackoffMs: 500 });
    assert.equal(budget.next(0), 50);
    assert.equal(budget.next(999), undefined);
    assert.equal(budget.next(1_001), 50);
  });

  it('maxRestarts 0 quarantines on the first fault', () => {
    assert.equal(new RestartBudget({ maxRestarts: 0, windowMs: 1_000, backoffMs: 50, maxBackoffMs: 500 }).next(0), undefined);
  });
});
