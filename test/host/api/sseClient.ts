import http from 'node:http';
import { DEFAULT_WAIT_MS, within } from '../../helpers/waitFor.ts';

/** One Server-Sent Event as a client sees it. */
export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** One `\n\n`-terminated block of an event stream as an event; undefined for a comment-only block (`: open`). */
export function parseSseBlock(block: string): SseEvent | undefined {
  const event: SseEvent = { data: '' };
  let isComment = true;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    isComment = false;
    const colon = line.indexOf(':');
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = value;
    else if (field === 'event') event.event = value;
    else if (field === 'data') event.data += value;
  }
  return isComment ? undefined : event;
}

/** An open SSE response: events so far, and how it ended. */
export interface SseStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  /** Resolves when the response is over: `ended` true when the server completed it, false when the connection dropped. */
  closed: Promise<{ ended: boolean }>;
  /** Resolves once `count` events have arrived (fails the test after `timeoutMs`, scaled as every test wait is). */
  waitFor(count: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** Drops the connection, as a client that goes away would. */
  close(): void;
}

/**
 * A minimal EventSource over node:http. Resolves once the response headers and the server's first comment (`: open`)
 * arrived, so that whatever the caller does next happens after the stream started.
 */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  return within(opening(url, headers), `the event stream ${url} to open`);
}

function opening(url: string, headers: Record<string, string>): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const events: SseEvent[] = [];
      const waiters: Array<() => void> = [];
      let buffer = '';
      let opened = false;
      let endedByServer = false;
      const closed = new Promise<{ ended: boolean }>((done) => {
        res.on('end', () => (endedByServer = true));
        res.on('close', () => done({ ended: endedByServer }));
      });
      const stream: SseStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        closed,
        waitFor(count, timeoutMs = DEFAULT_WAIT_MS) {
          const arrived = new Promise<SseEvent[]>((ok) => {
            const check = (): void => {
              if (events.length < count) return;
              waiters.splice(waiters.indexOf(check), 1);
              ok(events.slice(0, count));
            };
            waiters.push(check);
            check();
          });
          return within(arrived, () => `${count} events, got ${events.length}: ${JSON.stringify(events)}`, timeoutMs);
        },
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffer += text;
        let at: number;
        while ((at = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const event = parseSseBlock(block);
          if (event === undefined) {
            if (!opened) {
              opened = true;
              resolve(stream);
            }
            continue;
          }
          events.push(event);
          for (const w of [...waiters]) w();
        }
      });
      // A non-SSE answer (an error body) never sends `: open`: hand it over once complete.
      if (!String(res.headers['content-type']).startsWith('text/event-stream')) {
        res.on('end', () => {
          events.push({ event: 'body', data: buffer });
          resolve(stream);
        });
      }
    });
    req.on('error', reject);
  });
}
