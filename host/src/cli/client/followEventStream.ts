import { setTimeout as sleep } from 'node:timers/promises';
import { isWorkerManagerError, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import { hostError } from '../../errors.ts';
import { errorFromBody, type ApiClient, type Query } from './ApiClient.ts';
import type { ServerSentEvent } from './parseEventStream.ts';

/** How a followed stream behaves. */
export interface FollowOptions {
  /** The query; a function gets the id it resumes after (undefined on the first request), to drop e.g. `tailLines`. */
  query?: Query | ((lastEventId: string | undefined) => Query);
  /** Resume after this event id (the `Last-Event-ID` of the first request). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Reconnects in a row without receiving an event before giving up (HOST_ERR_CLI_UNREACHABLE). Default 5. */
  maxReconnects?: number;
  /** First pause before a reconnect; it doubles up to 5 s, or follows the server's `retry`. Default 250 ms. */
  reconnectDelayMs?: number;
  idleTimeoutMs?: number;
  /** Told once each connection is open (the server answered 200). */
  onOpen?: (attempt: number) => void;
  /** Told before each reconnect, with the id it resumes after (for a progress line on stderr). */
  onReconnect?: (lastEventId: string | undefined, attempt: number) => void;
}

function retryable(error: unknown): boolean {
  return isWorkerManagerError(error) && (error.code === 'HOST_ERR_CLI_UNREACHABLE' || error.category === 'TransientInfrastructure');
}

/** The coded error an `error` event carries. */
function errorOfEvent(event: ServerSentEvent): WorkerManagerError {
  let body: unknown;
  try {
    body = JSON.parse(event.data);
  } catch {
    body = undefined;
  }
  return errorFromBody(body, undefined) ?? hostError('HOST_ERR_CLI_BAD_RESPONSE', `the stream reported an error without a worker-manager error body: ${event.data.slice(0, 200)}`);
}

/**
 * Follows an SSE route of the API and yields its events, except `end` (which finishes the stream) and `error` (which
 * is thrown as its coded error). A dropped connection is reopened with `Last-Event-ID` set to the last id received,
 * so the server resumes right after it: nothing is lost, nothing repeated (the API's log and event routes promise it).
 */
export async function* followEventStream(client: ApiClient, path: string, options: FollowOptions = {}): AsyncGenerator<ServerSentEvent> {
  const maxReconnects = options.maxReconnects ?? 5;
  let delayMs = options.reconnectDelayMs ?? 250;
  let lastId = options.lastEventId;
  let attempts = 0;
  for (;;) {
    let dropped: unknown;
    let final: WorkerManagerError | undefined;
    try {
      const stream = await client.openEventStream(path, {
        ...(options.query === undefined ? {} : { query: typeof options.query === 'function' ? options.query(lastId) : options.query }),
        ...(lastId === undefined ? {} : { lastEventId: lastId }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
      });
      options.onOpen?.(attempts);
      for await (const event of stream) {
        attempts = 0;
        delayMs = event.retryMs ?? options.reconnectDelayMs ?? 250;
        if (event.id !== undefined && event.id !== '') lastId = event.id;
        if (event.event === 'end') return;
        if (event.event === 'error') {
          // The server's last word on this stream, even when its code is transient: reported, not retried.
          final = errorOfEvent(event);
          break;
        }
        yield event;
      }
    } catch (error) {
      if (options.signal?.aborted === true) return;
      if (isWorkerManagerError(error) && !retryable(error)) throw error;
      dropped = error;
    }
    if (final !== undefined) throw final;
    if (options.signal?.aborted === true) return;
    attempts += 1;
    if (attempts > maxReconnects) {
      throw hostError('HOST_ERR_CLI_UNREACHABLE', `the stream ${path} dropped and could not be reopened after ${maxReconnects} attempts${isWorkerManagerError(dropped) ? `: ${dropped.message}` : ''}`, {
        ...(dropped === undefined ? {} : { cause: dropped }),
        details: { path, ...(lastId === undefined ? {} : { lastEventId: lastId }) },
      });
    }
    options.onReconnect?.(lastId, attempts);
    try {
      await sleep(delayMs, undefined, options.signal === undefined ? undefined : { signal: options.signal });
    } catch {
      return;
    }
    delayMs = Math.min(delayMs * 2, 5_000);
  }
}
