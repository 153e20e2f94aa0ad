import type { MessagePort } from 'node:worker_threads';
import type { SerializedError, WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { StreamMessage } from '@worker-manager/plugin-sdk/internal';
import { schemaIssues, type CompiledCheck } from '../contractValidators.ts';

/** A stream a plugin thread is serving; `cancel` is what a host `{ type: 'cancel' }` or a shutdown does. */
export interface ActiveStream {
  cancel(): void;
}

/** What {@link pumpStream} needs. */
export interface PumpOptions {
  iterator: AsyncIterator<unknown>;
  port: MessagePort;
  item: CompiledCheck;
  /** Aborted on cancel; the handler got a signal that follows it. */
  stop: AbortController;
  streams: Set<ActiveStream>;
  protocolError(issues: unknown): SerializedError;
  /** Turns what the handler threw into a typed error. */
  toError(error: unknown): WorkerManagerError;
}

/**
 * Moves a handler's items to the host over the stream's port, as JSON text, until the iterator ends, throws, or the host cancels.
 * Runs detached from the piscina task that opened it. There is no flow control: handlers are expected to be paced by
 * their source (log lines), and a cancel stops them.
 */
export function pumpStream(options: PumpOptions): void {
  const { iterator, port, item, stop, streams, protocolError, toError } = options;
  let cancelled = false;
  const stream: ActiveStream = {
    cancel(): void {
      if (cancelled) return;
      cancelled = true;
      stop.abort();
      port.close();
      // An async generator queues return() behind a pending next(); the aborted signal is what unblocks that next().
      iterator.return?.().catch(() => {});
    },
  };
  streams.add(stream);
  port.on('message', (message: { type?: unknown } | null) => {
    if (message !== null && typeof message === 'object' && message.type === 'cancel') stream.cancel();
  });
  port.on('close', () => stream.cancel());
  // JSON text, like the channel: the host measures an item by its length before it parses it.
  const send = (message: StreamMessage): void => {
    if (!cancelled) port.postMessage(JSON.stringify(message));
  };
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (cancelled) return;
        if (next.done === true) {
          send({ type: 'end' });
          return;
        }
        if (!item.Check(next.value)) {
          send({ type: 'error', error: protocolError(schemaIssues(item, next.value)) });
          await iterator.return?.();
          return;
        }
        let text: string;
        try {
          text = JSON.stringify({ type: 'item', item: next.value } satisfies StreamMessage);
        } catch (error) {
          // A value the contract let through that is still not JSON (a BigInt under an unknown-typed field).
          send({ type: 'error', error: JSON.parse(JSON.stringify(toError(error).toJSON())) as SerializedError });
          await iterator.return?.();
          return;
        }
        if (!cancelled) port.postMessage(text);
      }
    } catch (error) {
      if (!cancelled) send({ type: 'error', error: JSON.parse(JSON.stringify(toError(error).toJSON())) as SerializedError });
    } finally {
      streams.delete(stream);
      if (!cancelled) {
        cancelled = true;
        port.close();
      }
    }
  })();
}
