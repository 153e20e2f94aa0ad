import { Compile } from 'typebox/compile';
import { hostError } from '../errors.ts';
import type { EventBus, EventHandler, Subscription } from './EventBus.ts';
import { EventEnvelope } from './EventEnvelope.ts';
import { subjectMatches } from './subjects.ts';

const checkEnvelope = Compile(EventEnvelope);

interface Sub {
  pattern: string;
  handler: EventHandler;
  queue: EventEnvelope[];
  draining: Promise<void> | undefined;
  active: boolean;
}

/**
 * In-process bus for the embedded default and tests. Each subscriber has its own FIFO queue drained one event at a
 * time, so a slow subscriber neither blocks the publisher nor reorders its own events.
 */
export class MemoryEventBus implements EventBus {
  readonly adapter = 'memory';
  readonly #subs = new Set<Sub>();
  readonly #onHandlerError: (error: unknown, event: EventEnvelope) => void;
  #stopped = false;

  constructor(options: { onHandlerError?: (error: unknown, event: EventEnvelope) => void } = {}) {
    this.#onHandlerError = options.onHandlerError ?? (() => {});
  }

  async start(): Promise<void> {
    this.#stopped = false;
  }

  async publish(event: EventEnvelope): Promise<void> {
    if (this.#stopped) throw hostError('HOST_ERR_PLUGIN_STOPPED', 'event bus is stopped', { details: { subject: event.busSubject } });
    if (!checkEnvelope.Check(event as unknown)) {
      const first = [...checkEnvelope.Errors(event)][0];
      throw hostError('HOST_ERR_PLUGIN_PROTOCOL', `invalid event envelope: ${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim(), {
        details: { subject: event.busSubject, type: event.type },
      });
    }
    for (const sub of this.#subs) {
      if (!sub.active || !subjectMatches(sub.pattern, event.busSubject)) continue;
      sub.queue.push(event);
      sub.draining ??= this.#drain(sub);
    }
  }

  subscribe(pattern: string, handler: EventHandler): Subscription {
    const sub: Sub = { pattern, handler, queue: [], draining: undefined, active: true };
    this.#subs.add(sub);
    return {
      unsubscribe: () => {
        sub.active = false;
        sub.queue.length = 0;
        this.#subs.delete(sub);
      },
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#subs].map((s) => s.draining));
  }

  async #drain(sub: Sub): Promise<void> {
    // Yield first so publish() returns before any handler runs, as with a network bus.
    await Promise.resolve();
    while (sub.active && sub.queue.length > 0) {
      const event = sub.queue.shift() as EventEnvelope;
      try {
        await sub.handler(event);
      } catch (error) {
        this.#onHandlerError(error, event);
      }
    }
    sub.draining = undefined;
  }
}
