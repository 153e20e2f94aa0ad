import type { ServerResponse } from 'node:http';

/** Comment lines keep idle proxies and load balancers from closing a quiet stream. */
const KEEP_ALIVE_MS = 15_000;

/**
 * Starts a Server-Sent Events response on a hijacked reply: headers (no proxy buffering, the correlation id), an
 * opening comment so the client sees the stream is live, and a keep-alive comment timer (unref'd), which the caller
 * clears when the stream ends.
 */
export function startEventStream(res: ServerResponse, correlationId: string): NodeJS.Timeout {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-correlation-id': correlationId,
  });
  res.write(': open\n\n');
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
  keepAlive.unref();
  return keepAlive;
}

/** Resolves once the socket can take more, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
