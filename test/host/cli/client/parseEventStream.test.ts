import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEventStream, type ServerSentEvent } from '../../../../host/src/cli/client/parseEventStream.ts';

async function parse(chunks: string[]): Promise<ServerSentEvent[]> {
  const encoder = new TextEncoder();
  async function* body(): AsyncGenerator<Uint8Array> {
    for (const chunk of chunks) yield encoder.encode(chunk);
  }
  const out: ServerSentEvent[] = [];
  for await (const event of parseEventStream(body())) out.push(event);
  return out;
}

describe('parseEventStream', () => {
  it('parses events, ids, multi-line data and comments', async () => {
    const events = await parse([': open\n\nid: 7\nevent: log\ndata: a\ndata: b\n\n', 'data: no name\n\n']);
    assert.deepEqual(events, [
      { event: 'log', data: 'a\nb', id: '7', retryMs: undefined },
      // The id carries over to later events, as in EventSource; an event without a name is a `message`.
      { event: 'message', data: 'no name', id: '7', retryMs: undefined },
    ]);
  });

  it('accepts CRLF and CR line ends, even split across chunks, and a leading BOM', async () => {
    const events = await parse(['\uFEFFid: 1\r', '\nevent: x\rdata: one\r', '\n\r', '\ndata:two\r\r']);
    assert.deepEqual(events.map((e) => [e.id, e.event, e.data]), [['1', 'x', 'one'], ['1', 'message', 'two']]);
  });

  it('handles multi-byte characters split between chunks', async () => {
    const bytes = new TextEncoder().encode('data: héllo ✓\n\n');
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
    }
    const out: string[] = [];
    for await (const e of parseEventStream(body())) out.push(e.data);
    assert.deepEqual(out, ['héllo ✓']);
  });

  it('drops events without data and an unterminated last event; reads retry', async () => {
    const events = await parse(['event: empty\n\nretry: 1500\ndata: kept\n\n', 'data: cut off']);
    assert.deepEqual(events, [{ event: 'message', data: 'kept', id: undefined, retryMs: 1500 }]);
  });
});
