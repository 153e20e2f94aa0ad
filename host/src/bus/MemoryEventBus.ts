import { hostError } from '../errors.ts';
import { deadLetterEvent } from './deadLetterEvent.ts';
import type { BusStats, EventBus, EventHandler, SubscribeOptions, Subscription } from './EventBus.ts';
import type { EventEnvelope } from './EventEnvelope.ts';
import { eventProblem } from './eventSchemas.ts';
import { DEAD_LETTER_TYPE, subjectMatches, subjectsFor, type Subjects } from './subjects.ts';

/** Options of {@link MemoryEventBus}. */
export interface MemoryEventBusOptions {
  /** Called when an event is dead-lettered, with the handler's last error. */
  onHandlerError?: (error: unknown, event: EventEnvelope) => void;
  /** Where dead letters go (`dlq.<prefix>.<consumer>`); prefix `ci` when absent. */
  subjects?: Subjects;
  /** Deliveries of one event before it is dead-lettered (default 5), unless the subscription says otherwise. */
  maxDeliver?: number;
  /** Delay before redelivery after attempt n is `n * redeliveryDelayMs` (default 10). */
  redeliveryDelayMs?: number;
}

interface Consumer {
  name: string;
  pattern: string;
  maxDeliver: number;
  handlers: EventHandler[];
  next: number;
  queue: EventEnvelope[];
  draining: Promise<void> | undefined;
}

let anonymous = 0;

/**
 * In-process bus for the embedded default and tests, with the JetStream adapter's semantics: each consumer has its own
 * FIFO queue drained one event at a time (a slow consumer neither blocks the publisher nor reorders its events), a
 * handler that throws gets the same event again before anything after it (at-least-once, order kept), and after
 * `maxDeliver` attempts the event is dead-lettered. Subscriptions sharing a durable name share the work.
 */
export class MemoryEventBus implements EventBus {
  readonly adapter = 'memory';
  readonly #consumers = new Map<string, Consumer>();
  readonly #onHandlerError: (error: unknown, event: EventEnvelope) => void;
  readonly #subjects: Subjects;
  readonly #maxDeliver: number;
  readonly #redeliveryDelayMs: number;
  readonly #counters = { published: 0, redelivered: 0, deadLettered: 0 };
  /** The last event published on each subject: few (the catalog's subjects, one audit head subject per host). */
  readonly #last = new Map<string, EventEnvelope>();
  #stopped = false;

  constructor(options: MemoryEventBusOptions = {}) {
    this.#onHandlerError = options.onHandlerError ?? (() => {});
    this.#subjects = options.subjects ?? subjectsFor('ci');
    this.#maxDeliver = options.maxDeliver ?? 5;
    this.#redeliveryDelayMs = options.redeliveryDelayMs ?? 10;
  }

  async start(): Promise<void> {
    this.#stopped = false;
  }

  async publish(event: EventEnvelope): Promise<void> {
    if (this.#stopped) throw hostError('HOST_ERR_PLUGIN_STOPPED', 'event bus is stopped', { details: { subject: event.busSubject } });
    const problem = eventProblem(event);
    if (problem !== undefined) throw hostError('HOST_ERR_PLUGIN_PROTOCOL', problem, { details: { subject: event.busSubject, type: event.type } });
    this.#route(event);
    this.#last.set(event.busSubject, event);
    this.#counters.published++;
  }

  async lastEvent(subject: string): Promise<EventEnvelope | undefined> {
    return this.#last.get(subject);
  }

  subscribe(pattern: string, handler: EventHandler, options: SubscribeOptions = {}): Subscription {
    const name = options.durable ?? `sub-${++anonymous}`;
    let consumer = this.#consumers.get(name);
    if (consumer === undefined) {
      consumer = { name, pattern, maxDeliver: options.maxDeliver ?? this.#maxDeliver, handlers: [], next: 0, queue: [], draining: undefined };
      this.#consumers.set(name, consumer);
    }
    const c = consumer;
    c.handlers.push(handler);
    return {
      ready: Promise.resolve(),
      unsubscribe: () => {
        const i = c.handlers.indexOf(handler);
        if (i !== -1) c.handlers.splice(i, 1);
        if (c.handlers.length === 0) {
          c.queue.length = 0;
          this.#consumers.delete(c.name);
        }
      },
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    // Dead letters produced while draining land in queues that must drain too.
    for (;;) {
      const pending = [...this.#consumers.values()].map((c) => c.draining).filter((d) => d !== undefined);
      if (pending.length === 0) return;
      await Promise.all(pending);
    }
  }

  stats(): BusStats {
    let pending = 0;
    for (const c of this.#consumers.values()) pending += c.queue.length;
    return { adapter: this.adapter, connected: !this.#stopped, pending, outbox: { depth: 0, oldestAgeMs: 0 }, ...this.#counters };
  }

  #route(event: EventEnvelope): void {
    for (const c of this.#consumers.values()) {
      if (c.handlers.length === 0 || !subjectMatches(c.pattern, event.busSubject)) continue;
      c.queue.push(event);
      c.draining ??= this.#drain(c);
    }
  }

  async #drain(c: Consumer): Promise<void> {
    // Yield first so publish() returns before any handler runs, as with a network bus.
    await Promise.resolve();
    while (this.#consumers.get(c.name) === c && c.queue.length > 0) {
      const event = c.queue[0] as EventEnvelope;
      for (let attempt = 1; ; attempt++) {
        const handler = c.handlers[c.next++ % c.handlers.length];
        if (handler === undefined) break;
        try {
          await handler(event, { attempt, consumer: c.name });
          break;
        } catch (error) {
          if (attempt >= c.maxDeliver) {
            this.#counters.deadLettered++;
            // A dead letter that fails again is only reported: re-dead-lettering it would loop forever.
            if (event.type !== DEAD_LETTER_TYPE) this.#route(deadLetterEvent(this.#subjects, event, c.name, attempt, error));
            this.#onHandlerError(error, event);
            break;
          }
          this.#counters.redelivered++;
          await new Promise((r) => setTimeout(r, attempt * this.#redeliveryDelayMs));
        }
      }
      c.queue.shift();
    }
    c.draining = undefined;
  }
}
