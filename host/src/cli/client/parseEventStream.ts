/** One dispatched Server-Sent Event. `id` is the last event id seen on the stream (it carries over, as in browsers). */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | undefined;
  retryMs: number | undefined;
}

/**
 * Parses a `text/event-stream` body as the HTML living standard says: lines end with CRLF, LF or CR; `:` lines are
 * comments (keep-alives); `data` lines accumulate; a blank line dispatches; an event with no data is dropped.
 */
export async function* parseEventStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let lastId: string | undefined;
  let retryMs: number | undefined;
  let first = true;

  const line = (text: string): ServerSentEvent | undefined => {
    if (text === '') {
      const out = data.length === 0 ? undefined : { event: event === '' ? 'message' : event, data: data.join('\n'), id: lastId, retryMs };
      event = '';
      data = [];
      return out;
    }
    if (text.startsWith(':')) return undefined;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    return undefined;
  };

  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    if (first && buffer.length > 0) {
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
      first = false;
    }
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      // A lone CR at the very end may be the first half of CRLF: wait for the next bytes.
      if (match === null || (match[0] === '\r' && match.index === buffer.length - 1)) break;
      const text = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const out = line(text);
      if (out !== undefined) yield out;
    }
  }
  // A CR held back as a possible CRLF is a line end after all when the stream ends there.
  if (buffer === '\r') {
    const out = line('');
    if (out !== undefined) yield out;
  }
  // An event not terminated by a blank line when the stream ends is incomplete and, per the standard, dropped.
}
