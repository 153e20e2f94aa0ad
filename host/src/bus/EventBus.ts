import type { WorkerCommand } from './commands/workerCommand.ts';
import type { EventEnvelope } from './EventEnvelope.ts';

/** Handle of a subscription. */
export interface Subscription {
  /** Resolves once the subscription receives events (a JetStream consumer exists); rejects if it cannot be created. */
  readonly ready: Promise<void>;
  unsubscribe(): void;
}

/** Delivery details passed to a handler next to the event. */
export interface Delivery {
  /** 1 on first delivery; higher on redelivery after a throw, a nak or a crashed consumer. */
  attempt: number;
  /** Consumer that received the event (the durable name, or a generated one). */
  consumer: string;
}

/**
 * Receives events. A throw or rejection makes the bus redeliver the event (at-least-once) up to the subscription's
 * `maxDeliver` attempts; after the last one the event goes to the dead-letter subject and the bus's error hook is
 * called. It never reaches the publisher.
 */
export type EventHandler = (event: EventEnvelope, delivery: Delivery) => void | Promise<void>;

/** Options of {@link EventBus.subscribe}. */
export interface SubscribeOptions {
  /**
   * Durable consumer name (`[A-Za-z0-9_-]+`). A durable subscription survives restarts and resumes where it left off;
   * two processes subscribing with the same name share the work. Without it the subscription sees events published
   * from the moment `subscribe` was called, for as long as it lives.
   */
  durable?: string;
  /** Deliveries of one event before it is dead-lettered; the bus default when absent. */
  maxDeliver?: number;
}

/** Counters and outbox gauges; the outbox fields are zero for adapters without one. */
export interface BusStats {
  adapter: string;
  connected: boolean;
  published: number;
  /** Events accepted but not yet acknowledged by the bus (in flight or waiting). */
  pending: number;
  outbox: {
    /** Events held in the durable outbox, waiting for the bus. */
    depth: number;
    /** Age in ms of the oldest event in the outbox; 0 when empty. */
    oldestAgeMs: number;
  };
  redelivered: number;
  deadLettered: number;
}

/** Runs worker commands received over the bus. */
export interface CommandExecutor {
  /** Runs a command for the first time; throws WorkerManagerError like the API. */
  run(command: WorkerCommand): Promise<unknown>;
  /**
   * Runs a command whose previous executor stopped mid-way, so its outcome is unknown: returns what it did if that can
   * be found out (a created worker), repeats it if that is harmless, and throws `WM_ERR_CONFLICT` otherwise.
   */
  recover(command: WorkerCommand): Promise<unknown>;
  /**
   * Checks who sent the command and whether they may, before anything else (before a stored result is replayed, so a
   * repeated key does not return someone else's result, and before a result is stored, so a refused command can be
   * sent again with better credentials). Throws WorkerManagerError (WM_ERR_AUTHENTICATION / WM_ERR_AUTHORIZATION).
   */
  admit?(command: WorkerCommand): Promise<void>;
}

/**
 * The port every publisher and subscriber uses. Adapters (memory, JetStream) live behind it, so host core never imports
 * a bus client (STYLE 7).
 *
 * Semantics shared by every adapter: at-least-once delivery, per subscription in publish order for the events of one
 * worker (one envelope `subject`), redelivery on handler failure, dead-letter after `maxDeliver` attempts.
 */
export interface EventBus {
  readonly adapter: string;
  start(): Promise<void>;
  /**
   * Validates and publishes. Resolves once the adapter has accepted the event: acknowledged by the bus, or written to
   * the durable outbox when the bus is unreachable or slow. It never waits for a bus that is down.
   */
  publish(event: EventEnvelope): Promise<void>;
  /** `pattern` uses NATS wildcards (`*`, `>`). */
  subscribe(pattern: string, handler: EventHandler, options?: SubscribeOptions): Subscription;
  /** Delivers what is queued, then stops. Safe to call twice. */
  stop(): Promise<void>;
  stats(): BusStats;
  /**
   * The last event stored on one subject (no wildcards), or undefined when there is none: read from the JetStream
   * stream that holds the subject; the memory bus remembers the last event of each subject for as long as it lives.
   */
  lastEvent?(subject: string): Promise<EventEnvelope | undefined>;
  /** Serves `<prefix>.worker.cmd.*` (adapters that support commands). The subscription ends at `stop()`. */
  serveCommands?(executor: CommandExecutor): Subscription & { close(): Promise<void> };
}
