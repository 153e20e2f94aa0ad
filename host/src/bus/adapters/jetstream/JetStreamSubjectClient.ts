import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { hostError } from '../../../errors.ts';
import type { EventEnvelope } from '../../EventEnvelope.ts';
import { eventProblem } from '../../eventSchemas.ts';
import { connectNats, type NatsConnectOptions } from './connectNats.ts';
import { lastStoredEvent } from './lastStoredEvent.ts';
import { loadStreamsFile, type StreamsFile } from './streamDefinitions.ts';

const encoder = new TextEncoder();

/**
 * A short-lived JetStream connection for one-shot tools (`wm audit verify` and `reset`): reads the last event of a
 * subject and publishes events, each acknowledged by its stream. No outbox and no state dir: a publish the server does
 * not acknowledge fails. It never creates or changes streams.
 */
export class JetStreamSubjectClient {
  readonly adapter = 'jetstream';
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #streams: StreamsFile;
  readonly #publishTimeoutMs: number;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, streams: StreamsFile, publishTimeoutMs: number) {
    this.#nc = nc;
    this.#js = jetstream(nc, { timeout: publishTimeoutMs });
    this.#jsm = jsm;
    this.#streams = streams;
    this.#publishTimeoutMs = publishTimeoutMs;
  }

  /** Connects (HOST_ERR_BUS_UNAVAILABLE after `connectTimeoutMs`); `streams` is the streams file or its content. */
  static async connect(options: NatsConnectOptions & { streams: string | StreamsFile; prefix: string; publishTimeoutMs: number }): Promise<JetStreamSubjectClient> {
    const streams = typeof options.streams === 'string' ? await loadStreamsFile(options.streams, options.prefix) : options.streams;
    const nc = await connectNats(options);
    try {
      return new JetStreamSubjectClient(nc, await jetstreamManager(nc, { timeout: options.publishTimeoutMs }), streams, options.publishTimeoutMs);
    } catch (error) {
      await nc.close();
      throw hostError('HOST_ERR_BUS_UNAVAILABLE', `JetStream is not available at ${options.servers.join(', ')}: ${(error as Error).message}`, { details: { servers: options.servers }, cause: error });
    }
  }

  lastEvent(subject: string): Promise<EventEnvelope | undefined> {
    return lastStoredEvent(this.#jsm, this.#streams, subject);
  }

  /** Publishes and waits for the stream's acknowledgement (`Nats-Msg-Id` = event id). */
  async publish(event: EventEnvelope): Promise<void> {
    const problem = eventProblem(event);
    if (problem !== undefined) throw hostError('HOST_ERR_PLUGIN_PROTOCOL', problem, { details: { subject: event.busSubject, type: event.type } });
    await this.#js.publish(event.busSubject, encoder.encode(JSON.stringify(event)), { msgID: event.id, timeout: this.#publishTimeoutMs });
  }

  async close(): Promise<void> {
    if (!this.#nc.isClosed()) await this.#nc.close();
  }
}
