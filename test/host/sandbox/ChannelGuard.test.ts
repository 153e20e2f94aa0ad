import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelGuard, channelLimits, type ChannelLimitValues } from '../../../host/src/sandbox/ChannelGuard.ts';
import { exceedsDepth, readJsonText } from '../../../host/src/sandbox/jsonText.ts';

function guard(overrides: Partial<ChannelLimitValues> = {}) {
  let now = 1_000_000;
  const warns: Array<Record<string, unknown>> = [];
  const floods: Array<{ kind: string; seconds: number }> = [];
  let acting = true;
  const g = new ChannelGuard(
    channelLimits(overrides),
    {
      warn: (_message, fields) => void warns.push(fields),
      flood: (detail) => {
        floods.push(detail);
        return acting;
      },
    },
    () => now,
  );
  return {
    g,
    warns,
    floods,
    advance(ms: number) {
      now += ms;
    },
    setActing(value: boolean) {
      acting = value;
    },
  };
}

const event = (workerId = 'w'): string => JSON.stringify({ type: 'event', event: { type: 'WorkerTerminated', workerId, timestamp: new Date(0).toISOString() } });
const log = (message = 'hi', fields?: unknown): string => JSON.stringify({ type: 'log', level: 'info', message, ...(fields === undefined ? {} : { fields }) });

describe('jsonText', () => {
  it('counts depth outside strings only, escaped quotes included', () => {
    assert.equal(exceedsDepth('{"a":"[[[[[[[[[[\\"[[[[[["}', 2), false);
    assert.equal(exceedsDepth('[[[1]]]', 3), false);
    assert.equal(exceedsDepth('[[[[1]]]]', 3), true);
    assert.equal(exceedsDepth('{"a\\\\":[[[[1]]]]}', 3), true);
  });

  it('refuses what is not text, too long or too deep, before parsing; malformed text is malformed', () => {
    assert.deepEqual(readJsonText({ type: 'log' }, 100, 4), { ok: false, reason: 'malformed' });
    assert.deepEqual(readJsonText('"' + 'x'.repeat(200) + '"', 100, 4), { ok: false, reason: 'too-large' });
    assert.deepEqual(readJsonText('['.repeat(5_000_000), 10_000_000, 32), { ok: false, reason: 'too-deep' });
    assert.deepEqual(readJsonText('{"a":', 100, 4), { ok: false, reason: 'malformed' });
    assert.deepEqual(readJsonText('{"a":[1]}', 100, 4), { ok: true, value: { a: [1] } });
  });
});

describe('ChannelGuard', () => {
  it('admits protocol messages and refuses the rest, counted by kind and reason', () => {
    const { g } = guard();
    assert.equal(g.admit(log(), 1)?.type, 'log');
    assert.equal(g.admit(event(), 1)?.type, 'event');
    // A structured clone instead of text, a kind that does not match its first characters, an unknown type.
    assert.equal(g.admit({ type: 'log', level: 'info', message: 'x' }, 1), undefined);
    assert.equal(g.admit(`{"type":"log","x":1,"type":"event"}`, 1), undefined);
    assert.equal(g.admit('{"type":"ready"}', 1), undefined);
    assert.equal(g.admit(log('x', { deep: JSON.parse('['.repeat(40) + ']'.repeat(40)) as unknown }), 1), undefined);
    assert.deepEqual(g.refused().sort((a, b) => a.kind.localeCompare(b.kind) || a.reason.localeCompare(b.reason)), [
      { kind: 'log', reason: 'malformed', count: 1 },
      { kind: 'log', reason: 'too-deep', count: 1 },
      { kind: 'other', reason: 'malformed', count: 2 },
    ]);
  });

  it('drops events past the rate, lets the bucket refill, and warns once a second with the number suppressed', () => {
    const { g, warns, advance } = guard({ eventsPerSecond: 10, eventBurst: 5, floodSeconds: 100 });
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (g.admit(event(), 1) !== undefined) admitted++;
    assert.equal(admitted, 5);
    assert.equal(warns.length, 1);
    advance(1_000);
    for (let i = 0; i < 20; i++) if (g.admit(event(), 1) !== undefined) admitted++;
    assert.equal(admitted, 10);
    assert.equal(warns.length, 2);
    assert.deepEqual(warns[1], { kind: 'event', reason: 'rate', bytes: event().length, threadId: 1, suppressed: 14 });
    assert.deepEqual(g.refused(), [{ kind: 'event', reason: 'rate', count: 30 }]);
  });

  it('charges log text by length, an oversized line included, and reports a flood after floodSeconds consecutive seconds of drops', () => {
    const { g, floods, advance } = guard({ logBytesPerSecond: 2_048, logBurstBytes: 2_048, maxMessageBytes: 4_096, floodSeconds: 3 });
    const big = log('x'.repeat(5_000));
    assert.equal(g.admit(big, 1), undefined);
    assert.deepEqual(g.refused(), [{ kind: 'log', reason: 'too-large', count: 1 }]);
    // One second with drops, a gap, then three in a row.
    advance(1_000);
    assert.equal(g.admit(big, 1), undefined);
    advance(2_000);
    for (let s = 0; s < 3; s++) {
      assert.equal(g.admit(big, 1), undefined);
      if (s < 2) assert.equal(floods.length, 0);
      advance(1_000);
    }
    assert.equal(floods.length, 1);
    assert.equal(floods[0]?.kind, 'log');
    assert.equal(floods[0]?.seconds, 3);
    // Acted on: never reported again.
    for (let s = 0; s < 5; s++, advance(1_000)) g.admit(big, 1);
    assert.equal(floods.length, 1);
  });

  it('counts the seconds anew when the sandbox could not act on a flood (still starting)', () => {
    const { g, floods, advance, setActing } = guard({ eventsPerSecond: 1, eventBurst: 1, floodSeconds: 2 });
    setActing(false);
    for (let s = 0; s < 2; s++, advance(1_000)) for (let i = 0; i < 3; i++) g.admit(event(), 1);
    assert.equal(floods.length, 1);
    setActing(true);
    for (let s = 0; s < 1; s++, advance(1_000)) for (let i = 0; i < 3; i++) g.admit(event(), 1);
    assert.equal(floods.length, 1, 'one second after the reset is not yet a flood');
    for (let i = 0; i < 3; i++) g.admit(event(), 1);
    assert.equal(floods.length, 2);
  });
});
