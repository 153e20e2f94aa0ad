import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatFields, formatTable } from '../../../../host/src/cli/output/formatTable.ts';

describe('formatTable', () => {
  it('aligns columns, capitalizes headers and leaves no trailing spaces', () => {
    const rows = [{ id: 'w-1', state: 'Running', labels: '' }, { id: 'w-long-id', state: 'Failed (exit 1)', labels: 'a=1' }];
    const text = formatTable([{ header: 'id', value: (r: (typeof rows)[number]) => r.id }, { header: 'state', value: (r) => r.state }, { header: 'labels', value: (r) => r.labels }], rows);
    assert.equal(text, ['ID         STATE            LABELS', 'w-1        Running', 'w-long-id  Failed (exit 1)  a=1'].join('\n'));
  });

  it('keeps every row on one line, whatever the values hold', () => {
    const text = formatTable([{ header: 'reason', value: (r: string) => r }], ['line one\nFAKE ROW\tx']);
    assert.deepEqual(text.split('\n'), ['REASON', 'line one FAKE ROW x']);
  });

  it('formats fields with aligned values', () => {
    assert.equal(formatFields([['id', 'w-1'], ['exit code', '3']]), 'id:         w-1\nexit code:  3');
  });
});
