/**
 * The host <-> plugin-thread protocol, in one place. Every message is validated on receipt with these schemas;
 * errors cross as {@link SerializedError} data and are rebuilt by code, never by prototype.
 *
 * - A call is a piscina task: {@link CallRequest} in, {@link CallReply} out.
 * - A stream call carries a transferred MessagePort; items flow as {@link StreamMessage}s, the host may send
 *   `{ type: 'cancel' }` back.
 * - Out-of-band messages (heartbeats, events, logs) travel as {@link ChannelMessage}s on the thread's own channel: a
 *   MessagePort the host creates for each thread and transfers with that thread's `$ready` control call. A message on
 *   it can only come from that thread, so one thread cannot speak (or beat) for another.
 * - What a thread sends the host (channel and stream messages) is JSON text, never a structured clone: the host
 *   measures a message by its length and refuses one over its limits before parsing it.
 */
import Type, { type Static } from 'typebox';
import { WorkerEvent } from './contracts/workerEvent.ts';
import { SerializedError } from './errors/SerializedError.ts';
import { PluginMetadata } from './pluginMetadata.ts';

/** Protocol version; bumped on any incompatible change of these shapes. */
export const PROTOCOL_VERSION = 2;

/**
 * A call from the host to a plugin thread. `port` is present for stream operations, and for `$ready`, where it is the
 * thread's channel (see {@link ChannelMessage}).
 */
export const CallRequest = Type.Object({
  v: Type.Literal(PROTOCOL_VERSION),
  method: Type.String({ minLength: 1 }),
  params: Type.Unknown(),
  correlationId: Type.Optional(Type.String()),
  /** Absolute deadline (epoch ms); the handler's signal aborts then. */
  deadline: Type.Optional(Type.Number()),
  port: Type.Optional(Type.Unknown()),
});
/** Call request. */
export type CallRequest = Static<typeof CallRequest>;

/** The reply of a call: a value or an error as data. */
export const CallReply = Type.Union([
  Type.Object({ ok: Type.Literal(true), value: Type.Unknown() }),
  Type.Object({ ok: Type.Literal(false), error: SerializedError }),
]);
/** Call reply. */
export type CallReply = Static<typeof CallReply>;

/** Messages on a stream operation's MessagePort. */
export const StreamMessage = Type.Union([
  Type.Object({ type: Type.Literal('item'), item: Type.Unknown() }),
  Type.Object({ type: Type.Literal('end') }),
  Type.Object({ type: Type.Literal('error'), error: SerializedError }),
  Type.Object({ type: Type.Literal('cancel') }),
]);
/** Stream message. */
export type StreamMessage = Static<typeof StreamMessage>;

/** Log levels plugin code may use. */
export const LogLevel = Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]);
/** Log level. */
export type LogLevel = Static<typeof LogLevel>;

/**
 * Out-of-band messages from a plugin thread to the host, sent as JSON text with `type` as the first key (the host
 * reads the kind of a message it refuses unparsed from its first characters). They carry no thread id: the port
 * they arrive on names the thread.
 */
export const ChannelMessage = Type.Union([
  Type.Object({ type: Type.Literal('heartbeat') }),
  Type.Object({ type: Type.Literal('event'), event: WorkerEvent }),
  Type.Object({ type: Type.Literal('log'), level: LogLevel, message: Type.String(), fields: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }),
]);
/** Channel message. */
export type ChannelMessage = Static<typeof ChannelMessage>;

/** The heartbeat as it crosses the thread boundary; the host recognises it by equality, without parsing. */
export const HEARTBEAT_TEXT = '{"type":"heartbeat"}';

/** What the host passes to every thread of a plugin instance (piscina `workerData`). */
export const ThreadInit = Type.Object({
  v: Type.Literal(PROTOCOL_VERSION),
  /** file: URL of the plugin's entry module. */
  entry: Type.String({ minLength: 1 }),
  pluginId: Type.String(),
  pluginVersion: Type.String(),
  kind: Type.Union([Type.Literal('provider'), Type.Literal('credentials')]),
  instance: Type.String(),
  hostId: Type.String(),
  config: Type.Unknown(),
  stateDir: Type.String(),
  heartbeatMs: Type.Integer({ minimum: 10 }),
  /** Operations the host negotiated; anything else is refused inside the thread too. */
  methods: Type.Array(Type.String()),
  /**
   * The package.json `workerManager` block the host negotiated from. When given, the thread refuses a definition that
   * declares anything else (`HOST_ERR_PLUGIN_METADATA_DRIFT`): the host would otherwise have decided on stale facts.
   */
  metadata: Type.Optional(PluginMetadata),
});
/** Thread init data. */
export type ThreadInit = Static<typeof ThreadInit>;
