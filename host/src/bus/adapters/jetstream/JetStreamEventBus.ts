import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type JsMsg, type StreamConfig } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { hostError } from '../../../errors.ts';
import { deadLetterEvent } from '../../deadLetterEvent.ts';
import type { BusStats, CommandExecutor, Delivery, EventBus, EventHandler, SubscribeOptions, Subscription } from '../../EventBus.ts';
import type { EventEnvelope } from '../../EventEnvelope.ts';
import { eventProblem } from '../../eventSchemas.ts';
import { Outbox } from '../../Outbox.ts';
import { DEAD_LETTER_TYPE, subjectIsSubset, subjectMatches, subjectsIntersect, type Subjects } from '../../subjects.ts';
import { connectNats, type JetStreamCredentials } from './connectNats.ts';
import { JetStreamCommandServer } from './JetStreamCommandServer.ts';
import { lastStoredEvent } from './lastStoredEvent.ts';
import { isEventStream, loadStreamsFile, type StreamDefinition, type StreamsFile } from './streamDefinitions.ts';

/** Options of {@link JetStreamEventBus}. */
export interface JetStreamEventBusOptions {
  servers: string[];
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  subjects: Subjects;
  /** Stream definitions: a file path, or the parsed content. */
  streams: string | StreamsFile;
  /** The outbox file, in the host's state dir. */
  outboxFile: string;
  credentials?: JetStreamCredentials | undefined;
  /** Environment the credential variables are read from (default `process.env`). */
  env?: NodeJS.ProcessEnv | undefined;
  /** How long start() keeps trying to reach a server. */
  connectTimeoutMs?: number | undefined;
  /** Base delay between reconnect attempts (jittered). */
  reconnectWaitMs?: number | undefined;
  /** Deadline of one publish acknowledgement. */
  publishTimeoutMs?: number | undefined;
  /** An event not acknowledged after this long is written to the outbox (and publish() resolves). */
  spillAfterMs?: number | undefined;
  /** Publishes in flight at once (one per worker at a time, to keep per-worker order). */
  maxInFlight?: number | undefined;
  /** How long stop() keeps flushing before leaving the rest in the outbox. */
  drainTimeoutMs?: number | undefined;
  onHandlerError?: ((error: unknown, event: EventEnvelope) => void) | undefined;
  /** Connection and flush problems, for the host log. */
  onWarning?: ((message: string, fields: Record<string, unknown>) => void) | undefined;
}

type Defaulted = 'connectTimeoutMs' | 'reconnectWaitMs' | 'publishTimeoutMs' | 'spillAfterMs' | 'maxInFlight' | 'drainTimeoutMs';
type Resolved = JetStreamEventBusOptions & { [K in Defaulted]-?: number };

interface Entry {
  event: EventEnvelope;
  payload: Uint8Array;
  key: string;
  inflight: boolean;
  persisted: boolean;
  at: number;
  waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The production bus on NATS JetStream.
 *
 * Publishing: every event goes through one ordered queue. While the bus answers, events are sent with `Nats-Msg-Id` =
 * event id (the stream drops a repeat within its duplicate window) and several are in flight at once, but never two of
 * the same worker (envelope `subject`): a worker's next event leaves only after the previous one is acknowledged, so a
 * failure and retry can never put them out of order. When the connection is down, or an event waits longer than
 * `spillAfterMs`, every unacknowledged event is appended to the durable outbox in queue order, and publish() resolves:
 * publishers never wait for a bus that is down. The queue keeps going when the bus is back; the outbox is replayed at
 * the next start if the host stops first.
 *
 * Consuming: one pull consumer per subscription and stream, explicit ack, taken one message at a time with
 * `max_ack_pending` 1 by default, so a redelivery comes before anything after it (per-worker order holds). The
 * attempt limit is enforced here, not with the server's `max_deliver`: at the last failed attempt, or when a message
 * arrives past it (the previous consumer crashed), the event is published to the dead-letter subject and terminated,
 * where the server would only have stopped delivering it.
 */
export class JetStreamEventBus implements EventBus {
  readonly adapter = 'jetstream';
  readonly #o: Resolved;
  readonly #outbox: Outbox;
  readonly #queue = new Map<string, Entry>();
  readonly #inflightKeys = new Set<string>();
  readonly #subs = new Set<{ open(): void; close(): Promise<void> }>();
  readonly #storedSubjects = new Map<string, boolean>();
  readonly #counters = { published: 0, duplicates: 0, redelivered: 0, deadLettered: 0 };
  #streams: StreamsFile | undefined;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #connected = false;
  #ready = false;
  /** Set once stop() has written the outbox: late acks and failures of in-flight publishes must not touch it. */
  #closed = false;
  #started: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #spillTimer: NodeJS.Timeout | undefined;
  #backoffMs = 0;
  #ensuring: Promise<void> | undefined;
  #idle: Array<() => void> = [];

  constructor(options: JetStreamEventBusOptions) {
    this.#o = {
      connectTimeoutMs: 10_000,
      reconnectWaitMs: 250,
      publishTimeoutMs: 2_000,
      spillAfterMs: 1_000,
      maxInFlight: 256,
      drainTimeoutMs: 5_000,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as Resolved;
    this.#outbox = new Outbox(options.outboxFile);
  }

  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async publish(event: EventEnvelope): Promise<void> {
    if (this.#stopping !== undefined) throw hostError('HOST_ERR_PLUGIN_STOPPED', 'event bus is stopped', { details: { subject: event.busSubject } });
    return this.#enqueue(event);
  }

  subscribe(pattern: string, handler: EventHandler, options: SubscribeOptions = {}): Subscription {
    const sub = new JetStreamSubscription(this, pattern, handler, options);
    this.#subs.add(sub);
    if (this.#ready) sub.open();
    return sub;
  }

  /** The last event the streams hold on `subject`; HOST_ERR_BUS_UNAVAILABLE before start. */
  async lastEvent(subject: string): Promise<EventEnvelope | undefined> {
    if (!this.#ready || this.#jsm === undefined) throw hostError('HOST_ERR_BUS_UNAVAILABLE', 'lastEvent() needs a started JetStream bus', { details: { subject } });
    return lastStoredEvent(this.#jsm, this.#streams as StreamsFile, subject);
  }

  /**
   * Serves worker commands from the commands work queue (see {@link JetStreamCommandServer}); every replica that calls
   * this shares one durable consumer, so each command goes to one replica at a time.
   */
  serveCommands(executor: CommandExecutor): JetStreamCommandServer {
    if (!this.#ready || this.#nc === undefined) throw hostError('HOST_ERR_BUS_UNAVAILABLE', 'serveCommands() needs a started JetStream bus');
    const server = new JetStreamCommandServer(this, this.#nc, executor);
    this.#subs.add(server);
    server.open();
    return server;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  stats(): BusStats & { duplicates: number } {
    return {
      adapter: this.adapter,
      connected: this.#connected,
      published: this.#counters.published,
      duplicates: this.#counters.duplicates,
      pending: this.#queue.size,
      outbox: { depth: this.#outbox.depth, oldestAgeMs: this.#outbox.oldestAgeMs() },
      redelivered: this.#counters.redelivered,
      deadLettered: this.#counters.deadLettered,
    };
  }

  /** @internal used by subscriptions */
  get internals(): { js: JetStreamClient | undefined; jsm: JetStreamManager | undefined; streams: StreamsFile; connected: boolean; subjects: Subjects } {
    return { js: this.#js, jsm: this.#jsm, streams: this.#streams as StreamsFile, connected: this.#connected, subjects: this.#o.subjects };
  }

  /** @internal */
  count(what: 'redelivered' | 'deadLettered'): void {
    this.#counters[what]++;
  }

  /** @internal dead letters bypass the stopped check: they are produced while subscriptions drain. */
  deadLetter(event: EventEnvelope): Promise<void> {
    return this.#enqueue(event);
  }

  /** @internal */
  reportHandlerError(error: unknown, event: EventEnvelope): void {
    this.#o.onHandlerError?.(error, event);
  }

  /** @internal */
  warn(message: string, fields: Record<string, unknown> = {}): void {
    this.#o.onWarning?.(message, fields);
  }

  /** @internal */
  forget(sub: { open(): void; close(): Promise<void> }): void {
    this.#subs.delete(sub);
  }

  async #start(): Promise<void> {
    this.#streams = typeof this.#o.streams === 'string' ? await loadStreamsFile(this.#o.streams, this.#o.subjects.prefix) : this.#o.streams;
    // Events a previous run could not deliver go first, in their original order.
    for (const event of await this.#outbox.open()) this.#queue.set(event.id, this.#entry(event, true));
    this.#nc = await connectNats(this.#o);
    this.#js = jetstream(this.#nc, { timeout: this.#o.publishTimeoutMs });
    this.#jsm = await jetstreamManager(this.#nc, { timeout: this.#o.publishTimeoutMs });
    this.#connected = true;
    void this.#watchStatus(this.#nc);
    await this.#ensureStreams();
    this.#ready = true;
    for (const sub of this.#subs) sub.open();
    this.#spillTimer = setInterval(() => this.#spillIfSlow(), Math.max(50, Math.floor(this.#o.spillAfterMs / 4)));
    this.#spillTimer.unref();
    this.#pump();
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    void nc.closed().then(() => {
      this.#connected = false;
    });
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.#connected = false;
        this.warn('NATS connection lost; events go to the outbox until it is back', { server: s.server });
        // Everything not yet acknowledged is at risk in the client's buffers: make it durable now.
        this.#spillAll();
      } else if (s.type === 'reconnect') {
        this.#connected = true;
        this.warn('NATS connection restored; flushing the outbox', { server: s.server, outbox: this.#outbox.depth });
        this.#backoffMs = 0;
        this.#afterFailure(0);
      }
    }
  }

  /** Creates missing streams and brings existing ones to their definition. */
  async #ensureStreams(): Promise<void> {
    const jsm = this.#jsm as JetStreamManager;
    for (const def of (this.#streams as StreamsFile).streams) {
      const wanted = streamConfig(def);
      let existing: StreamConfig | undefined;
      try {
        existing = (await jsm.streams.info(def.name)).config;
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      if (existing === undefined) {
        await jsm.streams.add(wanted);
        continue;
      }
      if (existing.retention !== wanted.retention || existing.storage !== wanted.storage) {
        throw hostError('HOST_ERR_CONFIG_INVALID', `stream ${def.name} exists with retention ${existing.retention}/${existing.storage}, the definition says ${wanted.retention}/${wanted.storage}; these cannot be changed in place`, {
          details: { stream: def.name },
        });
      }
      const drift = (['subjects', 'max_age', 'max_bytes', 'max_msgs', 'max_msgs_per_subject', 'num_replicas', 'duplicate_window'] as const).filter((k) => JSON.stringify(existing[k]) !== JSON.stringify(wanted[k]));
      const unprotected = (wanted.deny_delete === true && existing.deny_delete !== true) || (wanted.deny_purge === true && existing.deny_purge !== true);
      if (drift.length > 0 || unprotected) await jsm.streams.update(def.name, { ...existing, ...wanted });
    }
  }

  /** Whether a stream holds the subject (a publish to no stream could never be acknowledged). Cached: hot path. */
  #stored(subject: string): boolean {
    const streams = this.#streams?.streams;
    if (streams === undefined) return true;
    let known = this.#storedSubjects.get(subject);
    if (known === undefined) {
      known = streams.some((s) => isEventStream(s) && s.subjects.some((p) => subjectMatches(p, subject)));
      if (this.#storedSubjects.size < 10_000) this.#storedSubjects.set(subject, known);
    }
    return known;
  }

  #entry(event: EventEnvelope, persisted: boolean): Entry {
    return { event, payload: encoder.encode(JSON.stringify(event)), key: event.subject ?? event.busSubject, inflight: false, persisted, at: Date.now(), waiters: [] };
  }

  #enqueue(event: EventEnvelope): Promise<void> {
    const problem = eventProblem(event);
    if (problem !== undefined) return Promise.reject(hostError('HOST_ERR_PLUGIN_PROTOCOL', problem, { details: { subject: event.busSubject, type: event.type } }));
    if (!this.#stored(event.busSubject)) {
      return Promise.reject(hostError('HOST_ERR_PLUGIN_PROTOCOL', `no JetStream stream holds subject ${event.busSubject}`, { details: { subject: event.busSubject } }));
    }
    const existing = this.#queue.get(event.id);
    if (existing !== undefined) {
      // Same id already waiting: the stream would drop it anyway.
      return existing.persisted ? Promise.resolve() : new Promise((resolve, reject) => existing.waiters.push({ resolve, reject }));
    }
    const entry = this.#entry(event, false);
    this.#queue.set(event.id, entry);
    const accepted = new Promise<void>((resolve, reject) => entry.waiters.push({ resolve, reject }));
    if (!this.#connected || this.#retryTimer !== undefined) this.#spillAll();
    else this.#pump();
    return accepted;
  }

  /** Sends what can go: not in flight, and no earlier event of the same worker in flight. */
  #pump(): void {
    if (this.#closed || !this.#connected || this.#js === undefined || this.#retryTimer !== undefined) return;
    let scanned = 0;
    const budget = this.#o.maxInFlight + 1_024;
    for (const entry of this.#queue.values()) {
      if (this.#inflightKeys.size >= this.#o.maxInFlight || ++scanned > budget) break;
      if (entry.inflight || this.#inflightKeys.has(entry.key)) continue;
      this.#send(entry);
    }
    if (this.#queue.size === 0) for (const done of this.#idle.splice(0)) done();
  }

  #send(entry: Entry): void {
    entry.inflight = true;
    this.#inflightKeys.add(entry.key);
    (this.#js as JetStreamClient).publish(entry.event.busSubject, entry.payload, { msgID: entry.event.id, timeout: this.#o.publishTimeoutMs }).then(
      (ack) => {
        if (this.#closed) return;
        entry.inflight = false;
        this.#inflightKeys.delete(entry.key);
        this.#queue.delete(entry.event.id);
        if (ack.duplicate) this.#counters.duplicates++;
        else this.#counters.published++;
        if (entry.persisted) this.#outbox.ack(entry.event.id);
        settle(entry);
        this.#backoffMs = 0;
        this.#pump();
      },
      (error: unknown) => {
        if (this.#closed) return;
        entry.inflight = false;
        this.#inflightKeys.delete(entry.key);
        this.warn('event publish failed; kept for retry', { subject: entry.event.busSubject, id: entry.event.id, error: (error as Error).message });
        this.#spillAll();
        this.#backoffMs = Math.min(5_000, Math.max(100, this.#backoffMs * 2));
        this.#afterFailure(this.#backoffMs);
      },
    );
  }

  #afterFailure(delayMs: number): void {
    if (this.#closed) return;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      // A server that came back empty (new store) needs its streams again before anything can be stored.
      this.#ensuring ??= this.#ensureStreams()
        .then(() => this.#pump())
        .catch((error: unknown) => {
          this.warn('cannot verify streams; retrying', { error: (error as Error).message });
          this.#backoffMs = Math.min(5_000, Math.max(100, this.#backoffMs * 2));
          this.#afterFailure(this.#backoffMs);
        })
        .finally(() => {
          this.#ensuring = undefined;
        });
    }, delayMs);
  }

  #spillIfSlow(): void {
    for (const entry of this.#queue.values()) {
      if (!entry.persisted && Date.now() - entry.at > this.#o.spillAfterMs) this.#spillAll();
      return;
    }
  }

  /** Writes every unacknowledged event not yet in the outbox, in queue order, and resolves their publishers. */
  #spillAll(): Promise<void> {
    const batch: Entry[] = [];
    for (const entry of this.#queue.values()) {
      if (entry.persisted) continue;
      entry.persisted = true;
      batch.push(entry);
    }
    if (batch.length === 0) return Promise.resolve();
    return this.#outbox.append(batch.map((e) => e.event)).then(
      () => {
        for (const e of batch) {
          // Acknowledged while the write was in progress: the ack record could not precede the put.
          if (!this.#queue.has(e.event.id)) this.#outbox.ack(e.event.id);
          settle(e);
        }
      },
      (error: unknown) => {
        for (const e of batch) {
          e.persisted = false;
          settle(e, error);
        }
      },
    );
  }

  async #stop(): Promise<void> {
    await this.#started?.catch(() => undefined);
    await Promise.all([...this.#subs].map((s) => s.close()));
    if (this.#queue.size > 0 && this.#connected) {
      await Promise.race([new Promise<void>((r) => this.#idle.push(r)), sleep(this.#o.drainTimeoutMs)]);
    }
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    if (this.#spillTimer !== undefined) clearInterval(this.#spillTimer);
    this.#retryTimer = undefined;
    // What the bus did not take is kept for the next start.
    const spilled = this.#spillAll();
    this.#closed = true;
    await spilled.catch((error: unknown) => this.warn('could not write the outbox at stop', { error: (error as Error).message }));
    await this.#outbox.close();
    this.#ready = false;
    const nc = this.#nc;
    this.#nc = undefined;
    this.#connected = false;
    if (nc !== undefined && !nc.isClosed()) await nc.close();
  }
}

function settle(entry: Entry, error?: unknown): void {
  for (const w of entry.waiters.splice(0)) {
    if (error === undefined) w.resolve();
    else w.reject(error);
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && (error.name === 'StreamNotFoundError' || /not found/i.test(error.message));
}

function streamConfig(def: StreamDefinition): StreamConfig {
  return {
    name: def.name,
    ...(def.description === undefined ? {} : { description: def.description }),
    subjects: def.subjects,
    retention: def.retention === 'limits' ? RetentionPolicy.Limits : def.retention === 'interest' ? RetentionPolicy.Interest : RetentionPolicy.Workqueue,
    storage: def.storage === 'file' ? StorageType.File : StorageType.Memory,
    max_age: nanos(def.maxAgeMs),
    max_bytes: def.maxBytes,
    max_msgs: def.maxMsgs,
    max_msgs_per_subject: def.maxMsgsPerSubject,
    num_replicas: def.replicas,
    duplicate_window: nanos(def.duplicateWindowMs),
    discard: DiscardPolicy.Old,
    // Only ever sent as true: the server refuses to clear them, and a definition without them leaves them be.
    ...(def.denyDelete ? { deny_delete: true } : {}),
    ...(def.denyPurge ? { deny_purge: true } : {}),
  } as StreamConfig;
}

/**
 * One subscription: a consumer per stream the pattern reaches. The filter subject is the pattern when one stream
 * subject contains it, otherwise the whole stream is read and the pattern applied here (nats-server 2.9 accepts one
 * filter subject per consumer, and it must lie inside the stream's subjects).
 */
class JetStreamSubscription implements Subscription {
  readonly ready: Promise<void>;
  readonly #bus: JetStreamEventBus;
  readonly #pattern: string;
  readonly #handler: EventHandler;
  readonly #durable: string | undefined;
  readonly #name: string;
  readonly #maxDeliver: number | undefined;
  readonly #createdAt = new Date();
  readonly #handled = new Set<string>();
  #readyResolve!: () => void;
  #readyReject!: (e: unknown) => void;
  #loops: Promise<void>[] = [];
  #current: Promise<void> | undefined;
  #closed = false;

  constructor(bus: JetStreamEventBus, pattern: string, handler: EventHandler, options: SubscribeOptions) {
    this.#bus = bus;
    this.#pattern = pattern;
    this.#handler = handler;
    this.#durable = options.durable;
    this.#maxDeliver = options.maxDeliver;
    if (options.durable !== undefined && !/^[A-Za-z0-9_-]+$/.test(options.durable)) throw hostError('HOST_ERR_PLUGIN_PROTOCOL', `invalid durable name '${options.durable}'`, { details: { durable: options.durable } });
    this.#name = options.durable ?? `sub-${randomUUID().slice(0, 13)}`;
    this.ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => undefined);
  }

  open(): void {
    const { streams } = this.#bus.internals;
    // Command streams are never read by subscriptions: on a work queue, reading is taking.
    const targets = streams.streams.filter((s) => isEventStream(s) && s.subjects.some((p) => subjectsIntersect(p, this.#pattern)));
    if (targets.length === 0) {
      this.#readyReject(hostError('HOST_ERR_PLUGIN_PROTOCOL', `no JetStream stream holds subjects matching ${this.#pattern}`, { details: { pattern: this.#pattern } }));
      return;
    }
    const created = targets.map((def) => {
      let resolveCreated!: () => void;
      const p = new Promise<void>((r) => (resolveCreated = r));
      this.#loops.push(this.#run(def, resolveCreated));
      return p;
    });
    void Promise.all(created).then(() => this.#readyResolve());
  }

  unsubscribe(): void {
    void this.close().then(async () => {
      if (this.#durable !== undefined) return;
      const { jsm, streams } = this.#bus.internals;
      for (const def of streams?.streams ?? []) await jsm?.consumers.delete(def.name, this.#name).catch(() => undefined);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#bus.forget(this);
    // Only the handler in progress is awaited; a pending pull ends with the connection.
    await this.#current;
  }

  async #ensureConsumer(def: StreamDefinition): Promise<void> {
    const { jsm, streams } = this.#bus.internals;
    const d = streams.consumers;
    const filter = def.subjects.some((s) => subjectIsSubset(this.#pattern, s)) ? this.#pattern : undefined;
    const config = {
      durable_name: this.#name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(d.ackWaitMs),
      max_ack_pending: d.maxAckPending,
      // Attempts are counted and dead-lettered by the subscription (see the class comment), so the server never gives up.
      max_deliver: -1,
      ...(filter === undefined ? {} : { filter_subject: filter }),
      ...(this.#durable === undefined
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: this.#createdAt.toISOString(), inactive_threshold: nanos(d.inactiveThresholdMs) }
        : { deliver_policy: DeliverPolicy.All }),
    };
    try {
      await (jsm as JetStreamManager).consumers.info(def.name, this.#name);
      const { durable_name: _n, deliver_policy: _d, opt_start_time: _o, ...mutable } = config as Record<string, unknown>;
      await (jsm as JetStreamManager).consumers.update(def.name, this.#name, mutable);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      await (jsm as JetStreamManager).consumers.add(def.name, config);
    }
  }

  async #run(def: StreamDefinition, created: () => void): Promise<void> {
    let backoff = 100;
    while (!this.#closed) {
      try {
        const { js } = this.#bus.internals;
        if (js === undefined || !this.#bus.internals.connected) throw new Error('not connected');
        await this.#ensureConsumer(def);
        const consumer = await js.consumers.get(def.name, this.#name);
        created();
        backoff = 100;
        while (!this.#closed) {
          const m = await consumer.next({ expires: 2_000 });
          if (m === null || this.#closed) {
            if (m !== null) m.nak();
            continue;
          }
          this.#current = this.#handle(m);
          await this.#current;
          this.#current = undefined;
        }
      } catch (error) {
        if (this.#closed) break;
        this.#bus.warn('subscription interrupted; resuming', { pattern: this.#pattern, stream: def.name, consumer: this.#name, error: (error as Error).message });
        await sleep(backoff);
        backoff = Math.min(2_000, backoff * 2);
      }
    }
  }

  async #handle(m: JsMsg): Promise<void> {
    let event: EventEnvelope;
    try {
      event = JSON.parse(decoder.decode(m.data)) as EventEnvelope;
    } catch {
      this.#bus.warn('dropped a message that is not JSON', { subject: m.subject, seq: m.seq });
      m.term();
      return;
    }
    const problem = eventProblem(event);
    if (problem !== undefined) {
      this.#bus.warn('dropped an invalid event', { subject: m.subject, seq: m.seq, problem });
      m.term();
      return;
    }
    if (!subjectMatches(this.#pattern, m.subject) || this.#handled.has(event.id)) {
      m.ack();
      return;
    }
    const maxDeliver = this.#maxDeliver ?? this.#bus.internals.streams.consumers.maxDeliver;
    const delivery: Delivery = { attempt: m.info.deliveryCount, consumer: this.#name };
    if (delivery.attempt > 1) this.#bus.count('redelivered');
    if (delivery.attempt > maxDeliver) {
      await this.#deadLetter(m, event, delivery.attempt - 1, new Error('consumer stopped without acknowledging (crashed or timed out) on its last attempt'));
      return;
    }
    // A handler slower than ack_wait would otherwise be redelivered while it still runs.
    const ackWait = this.#bus.internals.streams.consumers.ackWaitMs;
    const keepAlive = setInterval(() => m.working(), Math.max(50, Math.floor(ackWait / 2)));
    try {
      await this.#handler(event, delivery);
      this.#remember(event.id);
      m.ack();
    } catch (error) {
      if (delivery.attempt >= maxDeliver) {
        await this.#deadLetter(m, event, delivery.attempt, error);
        this.#bus.reportHandlerError(error, event);
      } else {
        m.nak(Math.min(5_000, 10 * 2 ** delivery.attempt));
      }
    } finally {
      clearInterval(keepAlive);
    }
  }

  async #deadLetter(m: JsMsg, event: EventEnvelope, deliveries: number, error: unknown): Promise<void> {
    this.#bus.count('deadLettered');
    if (event.type !== DEAD_LETTER_TYPE) {
      // Accepted means acknowledged by the stream or durable in the outbox: only then is the original let go.
      await this.#bus.deadLetter(deadLetterEvent(this.#bus.internals.subjects, event, this.#name, deliveries, error));
    }
    // No reason text: nats-server 2.9 does not parse `+TERM <reason>` and would redeliver the message.
    m.term();
  }

  #remember(id: string): void {
    this.#handled.add(id);
    if (this.#handled.size > 10_000) this.#handled.delete(this.#handled.values().next().value as string);
  }
}
