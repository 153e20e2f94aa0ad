import type { EventEnvelope } from './EventEnvelope.ts';

/** Handle of a subscription. */
export interface Subscription {
  unsubscribe(): void;
}

/** Receives events; a throw or rejection is reported to the bus's error hook and never reaches the publisher. */
export type EventHandler = (event: EventEnvelope) => void | Promise<void>;

/**
 * The port every publisher and subscriber uses. Adapters (memory now, JetStream later) live behind it, so host core
 * never imports a bus client (STYLE 7).
 */
export interface EventBus {
  readonly adapter: string;
  start(): Promise<void>;
  /** Validates and publishes; resolves once the adapter has accepted the event. */
  publish(event: EventEnvelope): Promise<void>;
  /** `pattern` uses NATS wildcards (`*`, `>`). Each subscription receives events in publish order. */
  subscribe(pattern: string, handler: EventHandler): Subscription;
  /** Delivers what is queued, then stops. Safe to call twice. */
  stop(): Promise<void>;
}
