import type { EventBus, Subscription } from '../bus/EventBus.ts';
import type { EventEnvelope } from '../bus/EventEnvelope.ts';

/** How many bus events an API server keeps for `/v1/events` clients that reconnect. */
export const EVENT_HISTORY = 1_000;

/**
 * The last bus events under the prefix, kept in memory by the API server, so a `/v1/events` client that reconnects
 * with `Last-Event-ID` gets what was published while it was away. It holds only what this process saw since it
 * started, at least `capacity` events: after a host restart, or a longer absence, the client is told of the gap
 * instead. The bus itself (JetStream) keeps more, but its sequence is not the CloudEvents id clients know.
 */
export class RecentEvents {
  readonly #capacity: number;
  /** Oldest first; `#first` is the position of `#events[0]` in everything ever kept. */
  #events: EventEnvelope[] = [];
  #first = 0;
  readonly #positions = new Map<string, number>();
  readonly #subscription: Subscription;

  constructor(bus: EventBus, pattern: string, capacity = EVENT_HISTORY) {
    this.#capacity = capacity;
    this.#subscription = bus.subscribe(pattern, (event) => this.#keep(event));
    // Without a subscription there is no history: every resume is then answered as a gap, and the route itself
    // reports the bus failure on its own subscription.
    this.#subscription.ready.catch(() => undefined);
  }

  /** The events kept after the one with this id, oldest first; undefined when that id is not (or no longer) kept. */
  after(id: string): EventEnvelope[] | undefined {
    const at = this.#positions.get(id);
    return at === undefined ? undefined : this.#events.slice(at - this.#first + 1);
  }

  close(): void {
    this.#subscription.unsubscribe();
  }

  #keep(event: EventEnvelope): void {
    // At-least-once delivery: a redelivered event is already here.
    if (this.#positions.has(event.id)) return;
    this.#positions.set(event.id, this.#first + this.#events.length);
    this.#events.push(event);
    // Trimmed in batches, so keeping an event stays O(1) on average.
    if (this.#events.length >= this.#capacity * 2) {
      const drop = this.#events.length - this.#capacity;
      for (const old of this.#events.slice(0, drop)) this.#positions.delete(old.id);
      this.#events = this.#events.slice(drop);
      this.#first += drop;
    }
  }
}
