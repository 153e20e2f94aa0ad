import Type, { type Static } from 'typebox';

const Name = Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$', description: 'lowercase letters, digits and dashes' });

/** Restart policy of a plugin instance: at most `maxRestarts` within `windowMs`, then quarantine. */
export const RestartPolicy = Type.Object(
  {
    maxRestarts: Type.Integer({ minimum: 0, default: 5 }),
    windowMs: Type.Integer({ minimum: 1, default: 60_000 }),
    backoffMs: Type.Integer({ minimum: 0, default: 100 }),
    maxBackoffMs: Type.Integer({ minimum: 0, default: 5_000 }),
  },
  { additionalProperties: false, default: {} },
);

/** Resource limits of a plugin's threads. */
export const PluginLimits = Type.Object(
  {
    threads: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    concurrentCallsPerThread: Type.Integer({ minimum: 1, maximum: 1024, default: 16 }),
    heapMb: Type.Integer({ minimum: 16, maximum: 16_384, default: 256 }),
    callTimeoutMs: Type.Integer({ minimum: 1, default: 30_000 }),
    heartbeatMs: Type.Integer({ minimum: 10, default: 1_000 }),
    hangTimeoutMs: Type.Integer({ minimum: 50, default: 10_000 }),
    restart: RestartPolicy,
  },
  { additionalProperties: false, default: {} },
);

/** One plugin package the host loads. */
export const PluginEntry = Type.Object(
  {
    name: Name,
    /** A path (starting with `.` or `/`, relative to the config file) or an installed npm package name. */
    package: Type.String({ minLength: 1 }),
    /** Semver range of plugin versions accepted. */
    version: Type.String({ minLength: 1, default: '*' }),
    /** `restricted` runs plugin threads under Node's permission model: read own package only, no processes. */
    isolation: Type.Union([Type.Literal('trusted'), Type.Literal('restricted')], { default: 'trusted' }),
    onBootFailure: Type.Union([Type.Literal('continue'), Type.Literal('abort')], { default: 'continue' }),
    /** The only environment variables plugin threads see. */
    env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), { default: {} }),
    limits: PluginLimits,
  },
  { additionalProperties: false },
);
/** Plugin entry. */
export type PluginEntry = Static<typeof PluginEntry>;

/** One instance: a plugin started with one config. */
export const InstanceEntry = Type.Object(
  {
    name: Name,
    plugin: Name,
    /** Workers that name no provider go to the default provider instance. */
    default: Type.Boolean({ default: false }),
    /** Capabilities this instance must negotiate, or it does not boot. */
    requireCapabilities: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
    config: Type.Record(Type.String(), Type.Unknown(), { default: {} }),
  },
  { additionalProperties: false },
);
/** Instance entry. */
export type InstanceEntry = Static<typeof InstanceEntry>;

/** The host's own settings. */
export const HostSettings = Type.Object(
  {
    /** Stable id of this host; put on every resource it owns. Defaults to the machine's hostname. */
    id: Type.Optional(Name),
    /** Relative paths are resolved against the config file's folder. */
    stateDir: Type.String({ minLength: 1, default: './.wm-state' }),
    shutdownTimeoutMs: Type.Integer({ minimum: 0, default: 10_000 }),
    logLevel: Type.Union(
      [Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('silent')],
      { default: 'info' },
    ),
  },
  { additionalProperties: false, default: {} },
);

/** Event bus settings. Only `memory` exists until the JetStream adapter lands. */
export const BusSettings = Type.Object(
  {
    adapter: Type.Literal('memory', { default: 'memory' }),
    subjectPrefix: Type.String({ pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$', default: 'ci' }),
  },
  { additionalProperties: false, default: {} },
);

/** The whole manifest: the single source of truth for the YAML file's shape. */
export const HostConfig = Type.Object(
  {
    host: HostSettings,
    bus: BusSettings,
    plugins: Type.Array(PluginEntry, { default: [] }),
    instances: Type.Array(InstanceEntry, { default: [] }),
  },
  { additionalProperties: false },
);
/** Host config after defaults. */
export type HostConfig = Static<typeof HostConfig>;
