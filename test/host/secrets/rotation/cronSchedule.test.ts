import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CronSyntaxError, nextCronTime, parseCron } from '../../../../host/src/secrets/rotation/cronSchedule.ts';
import { parseDuration } from '../../../../host/src/secrets/rotation/parseDuration.ts';

const at = (y: number, mo: number, d: number, h = 0, mi = 0): Date => new Date(y, mo - 1, d, h, mi);
const next = (expr: string, from: Date): string | undefined => {
  const n = nextCronTime(parseCron(expr), from);
  return n === undefined ? undefined : `${n.getFullYear()}-${n.getMonth() + 1}-${n.getDate()} ${n.getHours()}:${String(n.getMinutes()).padStart(2, '0')} d${n.getDay()}`;
};

describe('parseCron / nextCronTime', () => {
  it('finds the next matching minute, strictly after the given time', () => {
    assert.equal(next('* * * * *', at(2025, 3, 10, 12, 30)), '2025-3-10 12:31 d1');
    assert.equal(next('0 3 * * *', at(2025, 3, 10, 3, 0)), '2025-3-11 3:00 d2');
    assert.equal(next('*/15 * * * *', at(2025, 3, 10, 12, 31)), '2025-3-10 12:45 d1');
    assert.equal(next('5/20 8-9 * * *', at(2025, 3, 10, 9, 46)), '2025-3-11 8:05 d2');
    assert.equal(next('0 0 1 jan,jul *', at(2025, 3, 10)), '2025-7-1 0:00 d2');
    assert.equal(next('30 2 29 2 *', at(2025, 1, 1)), '2028-2-29 2:30 d2');
  });

  it('days of week: names, 7 is Sunday, and either day field matches when both are restricted', () => {
    assert.equal(next('0 9 * * mon-fri', at(2025, 3, 8, 10)), '2025-3-10 9:00 d1');
    assert.equal(next('0 0 * * 7', at(2025, 3, 10)), '2025-3-16 0:00 d0');
    // Vixie cron: the 13th OR a Friday.
    assert.equal(next('0 0 13 * fri', at(2025, 3, 10)), '2025-3-13 0:00 d4');
    assert.equal(next('0 0 13 * fri', at(2025, 3, 13, 1)), '2025-3-14 0:00 d5');
  });

  it('never-matching schedules give undefined instead of looping', () => {
    assert.equal(next('0 0 30 2 *', at(2025, 1, 1)), undefined);
  });

  it('rejects malformed expressions with a reason', () => {
    for (const [expr, reason] of [
      ['* * * *', /expected 5 fields/],
      ['60 * * * *', /minute: 60 is outside 0-59/],
      ['* * 0 * *', /day-of-month: 0 is outside 1-31/],
      ['*/0 * * * *', /step '0'/],
      ['5-1 * * * *', /runs backwards/],
      ['x * * * *', /not a number/],
      ['* * * foo *', /not a number or a name/],
      ['1,,2 * * * *', /malformed/],
    ] as const) {
      assert.throws(() => parseCron(expr), (e: unknown) => e instanceof CronSyntaxError && reason.test(e.message), expr);
    }
  });
});

describe('parseDuration', () => {
  it('reads units and plain milliseconds, and refuses the rest', () => {
    assert.equal(parseDuration('90d'), 90 * 86_400_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('15s'), 15_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration('0s'), undefined);
    assert.equal(parseDuration('1w'), undefined);
    assert.equal(parseDuration(1.5), undefined);
  });
});
