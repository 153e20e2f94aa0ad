/**
 * The protocol between the host and an out-of-process sandbox: one JSON object per line, on the child's stdin (host to
 * sandbox) and stdout (sandbox to host). Heartbeats, events and logs are the threads' own {@link ChannelMessage}s,
 * forwarded as they are, so the host guards them with the same {@link ChannelGuard} as an in-process instance; the
 * frames below carry the calls. The sandbox is untrusted: the host checks every line it reads against these schemas,
 * and every result against the contract, before anything else sees it.
 */
import { PluginMetadata, SerializedError } from '@worker-manager/plugin-sdk';
import Type, { type Static } from 'typebox';

const Id = Type.Integer({ minimum: 1 });

/** What the sandbox needs to host the instance; paths are the ones it sees inside the sandbox. */
export const SandboxInit = Type.Object({
  type: Type.Literal('init'),
  pluginId: Type.String(),
  pluginVersion: Type.String(),
  kind: Type.Union([Type.Literal('provider'), Type.Literal('credentials')]),
  instance: Type.String(),
  hostId: Type.String(),
  config: Type.Unknown(),
  stateDir: Type.String(),
  packageDir: Type.String(),
  env: Type.Record(Type.String(), Type.String()),
  limits: Type.Unknown(),
  methods: Type.Array(Type.String()),
  /** The package.json `workerManager` block the host negotiated from (see ThreadInit.metadata). */
  metadata: Type.Optional(PluginMetadata),
  bundle: Type.Object({ dir: Type.String(), threadFile: Type.String(), pluginUrl: Type.String() }),
  /** The egress proxy's unix socket inside the sandbox; the sandbox relays 127.0.0.1:`proxyPort` to it. */
  egress: Type.Optional(Type.Object({ socketPath: Type.String(), proxyPort: Type.Integer({ minimum: 1, maximum: 65_535 }) })),
});
export type SandboxInit = Static<typeof SandboxInit>;

/** Frames the host sends. */
export const HostFrame = Type.Union([
  SandboxInit,
  Type.Object({
    type: Type.Literal('call'),
    id: Id,
    method: Type.String(),
    params: Type.Unknown(),
    timeoutMs: Type.Optional(Type.Number()),
    correlationId: Type.Optional(Type.String()),
  }),
  /** The caller gave up (its signal aborted): the sandbox aborts the call's own signal. */
  Type.Object({ type: Type.Literal('abort'), id: Id }),
  /** The next item of an open stream: one at a time, so a slow reader holds the plugin back, never the host's memory. */
  Type.Object({ type: Type.Literal('pull'), id: Id }),
  Type.Object({ type: Type.Literal('cancel'), id: Id }),
  Type.Object({ type: Type.Literal('stop'), timeoutMs: Type.Number() }),
]);
export type HostFrame = Static<typeof HostFrame>;

/** Frames the sandbox sends (besides the threads' channel messages). */
export const SandboxFrame = Type.Union([
  Type.Object({ type: Type.Literal('ready') }),
  Type.Object({ type: Type.Literal('fatal'), error: SerializedError }),
  Type.Object({ type: Type.Literal('result'), id: Id, result: Type.Unknown() }),
  Type.Object({ type: Type.Literal('error'), id: Id, error: SerializedError }),
  /** A stream operation started; items follow one per `pull`. */
  Type.Object({ type: Type.Literal('opened'), id: Id }),
  Type.Object({ type: Type.Literal('item'), id: Id, value: Type.Unknown() }),
  Type.Object({ type: Type.Literal('end'), id: Id }),
  /** A thread of the instance crashed, restarted or the instance was quarantined inside the sandbox. */
  Type.Object({
    type: Type.Literal('status'),
    state: Type.Union([Type.Literal('crashed'), Type.Literal('restarting'), Type.Literal('running'), Type.Literal('quarantined')]),
    reason: Type.String({ maxLength: 64 }),
    code: Type.Optional(Type.String({ maxLength: 128 })),
    message: Type.Optional(Type.String({ maxLength: 4_096 })),
    delayMs: Type.Optional(Type.Number()),
  }),
  Type.Object({ type: Type.Literal('stopped') }),
  /**
   * The sandbox's own counts of refused thread messages so far (cumulative, replacing the last frame's): the threads'
   * messages it refused never reach the host, so their counts come this way, ahead of any later message.
   */
  Type.Object({
    type: Type.Literal('refused'),
    counts: Type.Array(
      Type.Object({
        kind: Type.Union([Type.Literal('event'), Type.Literal('log'), Type.Literal('stream'), Type.Literal('other')]),
        reason: Type.Union([Type.Literal('too-large'), Type.Literal('too-deep'), Type.Literal('malformed'), Type.Literal('rate')]),
        count: Type.Integer({ minimum: 0 }),
      }, { additionalProperties: false }),
      { maxItems: 16 },
    ),
  }),
]);
export type SandboxFrame = Static<typeof SandboxFrame>;
