import type { MessagePort } from 'node:worker_threads';
import type { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { StreamMessage } from '@worker-manager/plugin-sdk/internal';
import { Compile } from 'typebox/compile';
import { schemaIssues, type CompiledCheck } from './contractValidators.ts';
import type { ReadText } from './jsonText.ts';

const messageCheck = Compile(StreamMessage);
const CLOSE_GRACE_MS = 100;

/** What a {@link StreamReader} needs from its sandbox. */
export interface StreamReaderOptions {
  port: MessagePort;
  item: CompiledCheck;
  /** Reads a message's JSON text within the size and depth limits (and counts a refusal). */
  read(raw: unknown): ReadText;
  /** Builds the error for a message outside the protocol or an item outside the contract. */
  protocolError(message: string, details: Record<string, unknown>): WorkerManagerError;
  /** Rebuilds an error the plugin sent. */
  rebuild(error: StreamMessage & { type: 'error' }): WorkerManagerError;
  /** Builds the error for a port that closed without an end (the thread is gone). */
  closedError(): WorkerManagerError;
  /** Called once, when the stream ends for any reason. */
  onFinish(): void;
}

/**
 * The host end of a stream operation: an async iterator over the items a plugin thread posts on the stream's port,
 * each checked against the operation's item schema. `cancel()` (or `break` out of `for await`) tells the thread to
 * stop; a thread that dies ends the iteration with its typed error.
 */
export class StreamReader<T = unknown> implements AsyncIterableIterator<T> {
  readonly #options: StreamReaderOptions;
  readonly #buffer: T[] = [];
  #head = 0;
  #waiting: { resolve(result: IteratorResult<T>): void; reject(error: unknown): void } | undefined;
  #error: WorkerManagerError | undefined;
  #finished = false;

  constructor(options: StreamReaderOptions) {
    this.#options = options;
    options.port.on('message', (message: unknown) => this.#onMessage(message));
    options.port.on('close', () => {
      // A dying thread closes its ports before its 'exit' event tells the sandbox why it died; wait a moment for the
      // sandbox to fail this stream with the real cause, then fall back to a generic one.
      if (!this.#finished) setTimeout(() => this.fail(options.closedError()), CLOSE_GRACE_MS);
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head] as T;
      this.#buffer[this.#head++] = undefined as T;
      if (this.#head === this.#buffer.length) {
        this.#buffer.length = 0;
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#error !== undefined) {
      const error = this.#error;
      this.#error = undefined;
      return Promise.reject(error);
    }
    if (this.#finished) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.cancel();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stops the stream: the thread is told to stop iterating, buffered items are dropped. */
  cancel(): void {
    if (this.#finished) return;
    try {
      this.#options.port.postMessage({ type: 'cancel' } satisfies StreamMessage);
    } catch {
      // The port is already closed: the thread is gone, nothing left to stop.
    }
    this.#buffer.length = 0;
    this.#head = 0;
    this.#finish();
    this.#waiting?.resolve({ value: undefined, done: true });
    this.#waiting = undefined;
  }

  /** Ends the stream with an error (the sandbox calls this when the stream's thread dies). */
  fail(error: WorkerManagerError): void {
    if (this.#finished) return;
    this.#finish();
    if (this.#waiting !== undefined) {
      this.#waiting.reject(error);
      this.#waiting = undefined;
    } else {
      this.#error = error;
    }
  }

  #onMessage(raw: unknown): void {
    if (this.#finished) return;
    const read = this.#options.read(raw);
    if (!read.ok) {
      const bytes = typeof raw === 'string' ? raw.length : undefined;
      this.#cancelWith(this.#options.protocolError(`plugin thread sent a stream message that was refused (${read.reason})`, { reason: read.reason, ...(bytes === undefined ? {} : { bytes }) }));
      return;
    }
    const message = read.value;
    if (!messageCheck.Check(message)) {
      this.#cancelWith(this.#options.protocolError('plugin thread sent a malformed stream message', { issues: schemaIssues(messageCheck, message) }));
      return;
    }
    switch (message.type) {
      case 'item': {
        if (!this.#options.item.Check(message.item)) {
          this.#cancelWith(this.#options.protocolError('plugin streamed an item outside its contract', { issues: schemaIssues(this.#options.item, message.item) }));
          return;
        }
        const item = message.item as T;
        if (this.#waiting !== undefined) {
          this.#waiting.resolve({ value: item, done: false });
          this.#waiting = undefined;
        } else {
          this.#buffer.push(item);
        }
        return;
      }
      case 'end':
        this.#finish();
        this.#waiting?.resolve({ value: undefined, done: true });
        this.#waiting = undefined;
        return;
      case 'error':
        this.fail(this.#options.rebuild(message));
        return;
      case 'cancel':
        this.#cancelWith(this.#options.protocolError('plugin thread sent a cancel on a stream it serves', {}));
    }
  }

  #cancelWith(error: WorkerManagerError): void {
    try {
      this.#options.port.postMessage({ type: 'cancel' } satisfies StreamMessage);
    } catch {
      // Closed already.
    }
    this.fail(error);
  }

  #finish(): void {
    this.#finished = true;
    this.#options.port.close();
    this.#options.onFinish();
  }
}
