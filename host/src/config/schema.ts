import { MAX_TIMER_MS } from '@worker-manager/plugin-sdk';
import Type, { type Static } from 'typebox';
import { ObservabilitySettings } from '../observability/observabilitySettings.ts';
import { SecretsSettings } from '../secrets/secretsSettings.ts';
import { SecuritySettings } from '../security/securitySettings.ts';
import { LedgerSettings } from '../workers/ledger/ledgerSettings.ts';

// Every field carries a `description`: docs/configuration.md is generated from this file (describeSchema.ts), and a
// test fails when a field has none or the doc is out of date.

const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

const Name = (description: string) => Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$', description });

/** How long a worker may take to start; shared by the host default and each instance's override. */
const WorkerStartTimeoutMs = (description: string, options: { default?: number } = {}) => Type.Integer({ minimum: 1_000, maximum: MAX_TIMER_MS, ...options, description });

/** Restart policy of a plugin instance: at most `maxRestarts` within `windowMs`, then quarantine. */
export const RestartPolicy = Type.Object(
  {
    maxRestarts: Type.Integer({ minimum: 0, default: 5, description: 'Restarts allowed within `windowMs`; one more crash quarantines the instance.' }),
    windowMs: Type.Integer({ minimum: 1, default: 60_000, description: 'Sliding window, in ms, over which restarts are counted.' }),
    backoffMs: Type.Integer({ minimum: 0, default: 100, description: 'Delay before the first restart, in ms; doubles on each further restart.' }),
    maxBackoffMs: Type.Integer({ minimum: 0, default: 5_000, description: 'Upper bound of the restart delay, in ms.' }),
  },
  { additionalProperties: false, default: {}, description: 'Restart budget of each instance of the plugin.' },
);

/**
 * What a plugin's threads may send the host: each message is JSON text, refused unparsed when it is larger or deeper
 * than allowed; events and log bytes are rate-limited per instance, and an instance that keeps flooding is quarantined.
 */
export const ChannelLimits = Type.Object(
  {
    maxMessageBytes: Type.Integer({
      minimum: 1_024,
      maximum: 67_108_864,
      default: 1_048_576,
      description: 'Largest message a thread may send (an event, a log line, a log chunk of a stream), as JSON text (one byte per ASCII character); a larger one is refused unparsed and counted.',
    }),
    maxDepth: Type.Integer({ minimum: 4, maximum: 256, default: 32, description: 'Deepest nesting of objects and arrays a thread\'s message may have; a deeper one is refused unparsed and counted.' }),
    eventsPerSecond: Type.Integer({ minimum: 1, default: 1_000, description: 'Worker events per second the instance may emit (all its threads together); events past the rate are dropped and counted.' }),
    eventBurst: Type.Integer({ minimum: 1, default: 2_000, description: 'Events the instance may emit at once (the token bucket\'s size), refilled at `eventsPerSecond`.' }),
    logBytesPerSecond: Type.Integer({ minimum: 1_024, default: 1_048_576, description: 'Bytes of log lines per second the instance may write (all its threads together); lines past the rate are dropped and counted.' }),
    logBurstBytes: Type.Integer({ minimum: 1_024, default: 4_194_304, description: 'Bytes of log lines the instance may write at once (the token bucket\'s size), refilled at `logBytesPerSecond`.' }),
    floodSeconds: Type.Integer({
      minimum: 1,
      default: 5,
      description: 'An instance that has messages dropped for exceeding a rate in this many consecutive seconds is quarantined (`HOST_ERR_PLUGIN_FLOOD`).',
    }),
  },
  { additionalProperties: false, description: 'Limits on the messages a plugin\'s threads send the host; every field has its default when the block is absent.' },
);

/** Limits of a restricted instance's whole sandbox process (rlimits, set before the sandbox starts). */
export const ProcessLimits = Type.Object(
  {
    memoryMb: Type.Optional(
      Type.Integer({
        minimum: 2_048,
        maximum: 1_048_576,
        description: 'Address space of the sandbox process, in MiB: heap and off-heap memory (Buffers) of all its threads together. Default: 2048 + (threads + 1) × (640 + heapMb), the one for the replacement of a hung or crashed thread. Address space is not memory in use: a sandbox with one thread reserves about 1.6 GiB (Node 20) to 2.0 GiB (Node 24) at start, and each further thread about 0.6 GiB.',
      }),
    ),
    maxProcesses: Type.Optional(Type.Integer({ minimum: 16, maximum: 65_536, description: 'Processes and threads the sandbox may have (RLIMIT_NPROC, counted per user inside its user namespace). Default 256.' })),
    maxOpenFiles: Type.Optional(Type.Integer({ minimum: 64, maximum: 1_048_576, description: 'Open file descriptors of the sandbox process (RLIMIT_NOFILE). Default 1024.' })),
    cpuPercent: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 6_400,
        description: 'CPU time the sandbox may use, in percent of one core (a cgroup CPU quota per 100 ms; v1 or v2). Default: 100 × threads. Where the host cannot create cgroups the limit is not applied, and a warn line says so at start.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Limits of the sandbox process of a `restricted` instance; breaking one kills only that instance, which restarts within its budget or is quarantined.' },
);

/** Resource limits of a plugin's threads. */
export const PluginLimits = Type.Object(
  {
    threads: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'Worker threads per instance.' }),
    concurrentCallsPerThread: Type.Integer({ minimum: 1, maximum: 1024, default: 16, description: 'Calls one thread runs at the same time.' }),
    heapMb: Type.Integer({ minimum: 16, maximum: 16_384, default: 256, description: 'V8 heap limit of each thread, in MiB; Buffers are not counted.' }),
    callTimeoutMs: Type.Integer({ minimum: 1, default: 30_000, description: 'Deadline of one call, in ms, from the moment it reaches a running thread; the thread is replaced when it passes.' }),
    // Separate from callTimeoutMs: loading a plugin (a cold TypeScript thread compiles every module it imports) takes
    // seconds on a loaded node, while a call deadline should stay as short as the operation allows.
    startTimeoutMs: Type.Integer({
      minimum: 1,
      default: 60_000,
      description: 'Deadline, in ms, for a generation of threads to load the plugin and run its setup; calls that arrive meanwhile wait for it up to this long, and their own deadline starts once they reach a thread.',
    }),
    heartbeatMs: Type.Integer({ minimum: 10, default: 1_000, description: 'Interval, in ms, at which each thread proves its event loop is alive.' }),
    hangTimeoutMs: Type.Integer({ minimum: 50, default: 10_000, description: 'A thread without a heartbeat for this long, in ms, is hung and replaced.' }),
    restart: RestartPolicy,
    // Optional, not defaulted here: the sandbox fills in the defaults, so configs and tests that spell out every
    // limit stay valid without it.
    channel: Type.Optional(ChannelLimits),
    process: Type.Optional(ProcessLimits),
  },
  { additionalProperties: false, default: {}, description: 'Resource limits of the plugin\'s threads.' },
);

/** One plugin package the host loads. */
export const PluginEntry = Type.Object(
  {
    name: Name('Name instances use to refer to this plugin: lowercase letters, digits and dashes.'),
    package: Type.String({
      minLength: 1,
      description: 'A path (starting with `.` or `/`, relative to the config file) or an installed npm package name.',
    }),
    version: Type.String({ minLength: 1, default: '*', description: 'Semver range of plugin versions accepted.' }),
    isolation: Type.Union([Type.Literal('trusted'), Type.Literal('restricted'), Type.Literal('auto')], {
      default: 'auto',
      description: '`restricted` runs each instance in its own OS process confined by bubblewrap (no host environment, no network unless the instance lists `egress`, a read-only copy of the package), with Node\'s permission model on its threads; `trusted` runs it in threads of the host process, with everything the host can reach. `auto` (the default): `restricted` for a package resolved by npm name (third-party code), `trusted` for a path (your own code).',
    }),
    onBootFailure: Type.Union([Type.Literal('continue'), Type.Literal('abort')], {
      default: 'continue',
      description: 'When an instance of this plugin fails to start: `continue` without it, or `abort` the host start.',
    }),
    env: Type.Record(Type.String({ pattern: ENV_NAME }), Type.String(), {
      default: {},
      // A record only checks keys that match its pattern: without propertyNames `1PATH: 3` would pass unchecked.
      // (Not `additionalProperties: false`: typebox 1.4's Value.Default throws on it inside a Record.)
      propertyNames: { pattern: ENV_NAME },
      description: 'The only environment variables plugin threads see (name to value).',
    }),
    limits: PluginLimits,
  },
  { additionalProperties: false, description: 'One plugin package the host loads.' },
);
/** Plugin entry. */
export type PluginEntry = Static<typeof PluginEntry>;

/** One instance: a plugin started with one config. */
export const InstanceEntry = Type.Object(
  {
    name: Name('Unique instance name (workers name it as their provider): lowercase letters, digits and dashes.'),
    plugin: Name('Name of the entry under `plugins` that this instance runs.'),
    default: Type.Boolean({ default: false, description: 'Workers that name no provider go to the default provider instance.' }),
    requireCapabilities: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Capabilities this instance must negotiate, or it does not boot.',
    }),
    config: Type.Record(Type.String(), Type.Unknown(), {
      default: {},
      description: 'The plugin\'s own config, validated by the registry against the plugin\'s `configSchema`.',
    }),
    egress: Type.Array(Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' }), {
      default: [],
      maxItems: 256,
      description: 'For a `restricted` plugin: the `host:port` pairs the instance may connect to, through the host\'s egress proxy (HTTP CONNECT; the plugin\'s HTTP clients find it in HTTPS_PROXY). Empty (the default) means no network at all. Names are resolved by the host; the host\'s own API is reachable only if listed. Ignored for `trusted` plugins, which share the host\'s network.',
    }),
    orphans: Type.Union([Type.Literal('adopt'), Type.Literal('terminate'), Type.Literal('ignore')], {
      default: 'adopt',
      description: 'What the host does at start with a worker this provider runs for it but the ledger has no record of: `adopt` it (a record with origin `orphan`), `terminate` it, or `ignore` it.',
    }),
    workerStartTimeoutMs: Type.Optional(WorkerStartTimeoutMs('This instance\'s start timeout, in ms, instead of `host.workerStartTimeoutMs` (say a Kubernetes instance whose images take long to pull).')),
  },
  { additionalProperties: false, description: 'One instance: a plugin started with one config.' },
);
/** The tier a plugin entry runs in: `auto` resolves by where its package comes from. */
export function effectiveIsolation(entry: Pick<PluginEntry, 'isolation' | 'package'>): 'trusted' | 'restricted' {
  if (entry.isolation !== 'auto') return entry.isolation;
  return entry.package.startsWith('.') || entry.package.startsWith('/') ? 'trusted' : 'restricted';
}

/** Instance entry. */
export type InstanceEntry = Static<typeof InstanceEntry>;

/** The host's own settings. */
export const HostSettings = Type.Object(
  {
    id: Type.Optional(Name('Stable id of this host; put on every resource it owns. Defaults to the machine\'s hostname.')),
    stateDir: Type.String({
      minLength: 1,
      default: './.wm-state',
      description: 'Folder for the host\'s and instances\' state. Relative paths are resolved against the config file\'s folder.',
    }),
    shutdownTimeoutMs: Type.Integer({ minimum: 0, default: 10_000, description: 'How long, in ms, a stop waits for in-flight work before cancelling it.' }),
    logLevel: Type.Union(
      [Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('silent')],
      { default: 'info', description: 'Least severe log level written.' },
    ),
    onShutdown: Type.Union([Type.Literal('leave-running'), Type.Literal('drain'), Type.Literal('terminate')], {
      default: 'leave-running',
      description: 'What a stop does to the workers: `leave-running` leaves them running, and the next start adopts them; `drain` refuses new workers (503 `HOST_ERR_DRAINING` with `Retry-After`), waits up to `drainTimeoutMs` for the running ones to end, then terminates the rest; `terminate` refuses new workers and terminates all at once. Each terminated worker gets its provider\'s grace period and ends `Failed` with reason `HostShutdown`.',
    }),
    drainTimeoutMs: Type.Integer({
      minimum: 0,
      maximum: MAX_TIMER_MS,
      default: 300_000,
      description: 'With `onShutdown: drain`, how long, in ms, a stop waits for workers to end before it terminates the rest. The service manager\'s stop timeout (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds) must be longer.',
    }),
    workerStartTimeoutMs: WorkerStartTimeoutMs(
      'How long, in ms from its create, a worker may stay Pending, Creating or Starting before the host terminates what its provider made and records it `Failed` with reason `StartTimeout` (and its last pending reason, such as `ImagePull`). Fixed in the worker\'s record at create (`startTimeoutMs`); an instance may override it.',
      { default: 600_000 },
    ),
  },
  { additionalProperties: false, default: {}, description: 'The host\'s own settings.' },
);

const EnvRef = (description: string) => Type.Optional(Type.String({ pattern: ENV_NAME, description }));

/** Credentials of the NATS connection, by reference: the config names environment variables, never holds secrets. */
export const JetStreamCredentials = Type.Object(
  {
    tokenEnv: EnvRef('Environment variable holding a NATS token.'),
    userEnv: EnvRef('Environment variable holding the NATS user name.'),
    passwordEnv: EnvRef('Environment variable holding the NATS password.'),
    credsFile: Type.Optional(Type.String({ minLength: 1, description: 'Path of a NATS `.creds` file (JWT + nkey seed), relative to the config file\'s folder.' })),
  },
  { additionalProperties: false, default: {}, description: 'How the host authenticates to NATS. Empty: no authentication.' },
);

/** The durable outbox that holds events while the bus is unreachable or slow. */
export const OutboxSettings = Type.Object(
  {
    dir: Type.String({ minLength: 1, default: 'bus-outbox', description: 'Folder of the outbox file, relative to `host.stateDir`.' }),
    spillAfterMs: Type.Integer({ minimum: 10, default: 1_000, description: 'An event the bus has not acknowledged after this long, in ms, is written to the outbox and its publisher released.' }),
  },
  { additionalProperties: false, default: {}, description: 'Durable local outbox used while the bus is unreachable or slow.' },
);

/** Settings of the NATS JetStream adapter. */
export const JetStreamSettings = Type.Object(
  {
    servers: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, default: ['nats://127.0.0.1:4222'], description: 'NATS server URLs; the client reconnects to any of them.' }),
    name: Type.Optional(Type.String({ minLength: 1, description: 'Connection name shown by the server. Defaults to `wm-<host id>`.' })),
    credentials: JetStreamCredentials,
    streamsFile: Type.Optional(Type.String({
      minLength: 1,
      description: 'Stream and consumer definitions (YAML), relative to the config file\'s folder. Defaults to the host\'s `config/jetstream/streams.yaml`.',
    })),
    connectTimeoutMs: Type.Integer({ minimum: 100, default: 10_000, description: 'How long, in ms, start keeps trying to reach a server before failing with HOST_ERR_BUS_UNAVAILABLE.' }),
    reconnectWaitMs: Type.Integer({ minimum: 10, default: 250, description: 'Base delay, in ms, between reconnect attempts (jittered); reconnection never gives up.' }),
    publishTimeoutMs: Type.Integer({ minimum: 100, default: 2_000, description: 'Deadline, in ms, of one publish acknowledgement; a late event is retried from the outbox.' }),
    maxInFlight: Type.Integer({ minimum: 1, maximum: 65_536, default: 256, description: 'Publishes awaiting acknowledgement at once (at most one per worker, to keep per-worker order).' }),
    drainTimeoutMs: Type.Integer({ minimum: 0, default: 5_000, description: 'How long, in ms, stop keeps flushing before leaving the rest in the outbox for the next start.' }),
    outbox: OutboxSettings,
  },
  { additionalProperties: false, description: 'NATS JetStream adapter settings (used when `adapter` is `jetstream`; every field has a default).' },
);

/** Event bus settings. */
export const BusSettings = Type.Object(
  {
    adapter: Type.Union([Type.Literal('memory'), Type.Literal('jetstream')], {
      default: 'memory',
      description: '`memory`: in-process bus (embedded default, tests). `jetstream`: NATS JetStream with a durable outbox (production).',
    }),
    subjectPrefix: Type.String({
      pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$',
      default: 'ci',
      description: 'Prefix of every subject the host publishes, e.g. `ci` gives `ci.worker.created`.',
    }),
    maxDeliver: Type.Optional(Type.Integer({
      minimum: 1,
      description: 'Memory adapter: deliveries of one event to a failing handler before it is dead-lettered; 5 when absent (JetStream: `consumers.maxDeliver` in the streams file).',
    })),
    serveCommands: Type.Optional(Type.Boolean({
      description: 'Serve `<prefix>.worker.cmd.<operation>` commands from the bus (JetStream only); replicas share the work queue. Off when absent.',
    })),
    jetstream: Type.Optional(JetStreamSettings),
  },
  { additionalProperties: false, default: {}, description: 'Event bus settings.' },
);
/** Bus settings after defaults. */
export type BusSettings = Static<typeof BusSettings>;

/** The REST API server. */
export const ApiSettings = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'Serve the REST API (`/v1/...`, `/healthz`, `/readyz`) while the host runs.' }),
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address the API listens on; `0.0.0.0` exposes it beyond this machine and needs `security.authentication.mode: oidc` (the host refuses to start otherwise).' }),
    port: Type.Integer({ minimum: 0, maximum: 65_535, default: 8080, description: 'TCP port of the API; 0 picks a free one.' }),
    bodyLimitBytes: Type.Integer({ minimum: 1_024, maximum: 104_857_600, default: 1_048_576, description: 'Largest request body accepted, in bytes; larger ones get 413 HOST_ERR_API_BODY_TOO_LARGE.' }),
  },
  { additionalProperties: false, default: {}, description: 'REST API server settings.' },
);
/** API settings after defaults. */
export type ApiSettings = Static<typeof ApiSettings>;

/** The whole manifest: the single source of truth for the YAML file's shape. */
export const HostConfig = Type.Object(
  {
    host: HostSettings,
    bus: BusSettings,
    api: ApiSettings,
    secrets: SecretsSettings,
    security: SecuritySettings,
    ledger: LedgerSettings,
    observability: ObservabilitySettings,
    plugins: Type.Array(PluginEntry, { default: [], description: 'Plugin packages to load.' }),
    instances: Type.Array(InstanceEntry, { default: [], description: 'Plugin instances to start, each with its own config.' }),
  },
  { additionalProperties: false },
);
/** Host config after defaults. */
export type HostConfig = Static<typeof HostConfig>;
