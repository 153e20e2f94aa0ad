import { Type, type Static } from '@worker-manager/plugin-sdk';

const Millis = (d: number, description: string) => Type.Optional(Type.Integer({ minimum: 0, default: d, description }));

/** Instance config of the Docker provider. Every field is optional; the defaults suit a local engine. */
export const DockerConfig = Type.Object(
  {
    socketPath: Type.Optional(Type.String({ minLength: 1, description: 'Unix socket of the engine; default: DOCKER_HOST, else /var/run/docker.sock' })),
    host: Type.Optional(Type.String({ minLength: 1, description: 'tcp:// or https:// URL of the engine (instead of socketPath)' })),
    tls: Type.Optional(
      Type.Object(
        {
          caFile: Type.Optional(Type.String({ minLength: 1 })),
          certFile: Type.Optional(Type.String({ minLength: 1 })),
          keyFile: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false, description: 'TLS files for an https:// host' },
      ),
    ),
    labelPrefix: Type.Optional(Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$', default: 'worker-manager', description: 'prefix of every label the plugin sets' })),
    defaultNetwork: Type.Optional(Type.String({ minLength: 1, description: 'network for Default isolation; default: a bridge network per instance, made on demand' })),
    publishAddress: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'host address ports are published on' })),
    allowedHostPaths: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { default: [], description: 'path prefixes HostPath volumes may use' })),
    configMaps: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.Record(Type.String({ pattern: '^[A-Za-z0-9._-]+$' }), Type.String()), {
        default: {},
        description: 'ConfigMap volumes: name to files (file name to content)',
      }),
    ),
    secretsDir: Type.Optional(Type.String({ pattern: '^/', default: '/dev/shm/worker-manager', description: 'host tmpfs folder for file secrets and config maps (needs a local engine)' })),
    secretsMountPath: Type.Optional(Type.String({ pattern: '^/', default: '/run/secrets', description: 'where file secrets with a relative path appear in the worker' })),
    registryAuthSecret: Type.Optional(
      Type.String({ minLength: 1, description: 'name of a secret (resolved by the host for the worker) holding registry credentials as JSON {username, password, serveraddress}; used for pulls, never mounted' }),
    ),
    imagePullPolicy: Type.Optional(
      Type.Union([Type.Literal('IfNotPresent'), Type.Literal('Always'), Type.Literal('Never')], {
        default: 'IfNotPresent',
        description: 'IfNotPresent: pull an image the engine lacks; Always: pull at every create; Never: refuse an absent image. Pulls run after createWorker returned',
      }),
    ),
    init: Type.Optional(Type.Boolean({ default: true, description: 'run an init process (docker-init) as PID 1 so SIGTERM reaches the command' })),
    defaultGracePeriodMs: Millis(5_000, 'SIGTERM to SIGKILL delay when terminateWorker gives none'),
    startTimeoutMs: Millis(60_000, 'how long restartWorker waits for Running (and healthy); createWorker does not wait'),
    emptyDirDefaultMiB: Type.Optional(Type.Integer({ minimum: 1, default: 64, description: 'tmpfs size of an EmptyDir without sizeMiB or storageMiB' })),
    maxExecOutputBytes: Type.Optional(Type.Integer({ minimum: 1_024, default: 1_048_576, description: 'cap on stdout and on stderr of executeCommand' })),
    reserved: Type.Optional(
      Type.Object(
        { cpuMillicores: Type.Optional(Type.Integer({ minimum: 0 })), memoryMiB: Type.Optional(Type.Integer({ minimum: 0 })) },
        { additionalProperties: false, default: {}, description: 'capacity kept back from workers' },
      ),
    ),
    maxWorkers: Type.Optional(Type.Integer({ minimum: 1, default: 200, description: 'workers that may run at once' })),
    pidsLimit: Type.Optional(Type.Integer({ minimum: 0, default: 1_024, description: 'process limit of each worker (0: none)' })),
    capAdd: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z_]+$' }), { default: [], description: 'capabilities added back after dropping ALL' })),
    abandonedCreateMs: Millis(30_000, 'a container still not started after this long was left by a dead thread; cleanup removes it'),
    cleanupIntervalMs: Millis(60_000, 'how often the event-watching thread removes orphaned networks, volumes and secret folders (0: only at start)'),
    leaseStaleMs: Type.Optional(Type.Integer({ minimum: 500, default: 5_000, description: 'after this long without renewal, another thread takes over the engine event stream' })),
    stopUnhealthy: Type.Optional(Type.Boolean({ default: true, description: 'kill a worker whose health check reports unhealthy (it becomes Failed: Unhealthy)' })),
    retry: Type.Optional(
      Type.Object(
        { attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })), backoffMs: Type.Optional(Type.Integer({ minimum: 1 })) },
        { additionalProperties: false, default: {}, description: 'retries of idempotent engine calls when the engine is unreachable' },
      ),
    ),
  },
  { additionalProperties: false },
);
/** Docker provider config as the host passes it. */
export type DockerConfig = Static<typeof DockerConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  socketPath: string | undefined;
  host: string | undefined;
  tls: { caFile?: string; certFile?: string; keyFile?: string };
  labelPrefix: string;
  defaultNetwork: string | undefined;
  publishAddress: string;
  allowedHostPaths: string[];
  configMaps: Record<string, Record<string, string>>;
  secretsDir: string;
  secretsMountPath: string;
  imagePullPolicy: 'IfNotPresent' | 'Always' | 'Never';
  registryAuthSecret: string | undefined;
  init: boolean;
  defaultGracePeriodMs: number;
  startTimeoutMs: number;
  emptyDirDefaultMiB: number;
  maxExecOutputBytes: number;
  reserved: { cpuMillicores: number; memoryMiB: number };
  maxWorkers: number;
  pidsLimit: number;
  capAdd: string[];
  abandonedCreateMs: number;
  cleanupIntervalMs: number;
  leaseStaleMs: number;
  stopUnhealthy: boolean;
  retry: { attempts: number; backoffMs: number };
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(c: DockerConfig): ResolvedConfig {
  return {
    socketPath: c.socketPath,
    host: c.host,
    tls: c.tls ?? {},
    labelPrefix: c.labelPrefix ?? 'worker-manager',
    defaultNetwork: c.defaultNetwork,
    publishAddress: c.publishAddress ?? '127.0.0.1',
    allowedHostPaths: c.allowedHostPaths ?? [],
    configMaps: c.configMaps ?? {},
    secretsDir: c.secretsDir ?? '/dev/shm/worker-manager',
    secretsMountPath: c.secretsMountPath ?? '/run/secrets',
    imagePullPolicy: c.imagePullPolicy ?? 'IfNotPresent',
    registryAuthSecret: c.registryAuthSecret,
    init: c.init ?? true,
    defaultGracePeriodMs: c.defaultGracePeriodMs ?? 5_000,
    startTimeoutMs: c.startTimeoutMs ?? 60_000,
    emptyDirDefaultMiB: c.emptyDirDefaultMiB ?? 64,
    maxExecOutputBytes: c.maxExecOutputBytes ?? 1_048_576,
    reserved: { cpuMillicores: c.reserved?.cpuMillicores ?? 0, memoryMiB: c.reserved?.memoryMiB ?? 0 },
    maxWorkers: c.maxWorkers ?? 200,
    pidsLimit: c.pidsLimit ?? 1_024,
    capAdd: c.capAdd ?? [],
    abandonedCreateMs: c.abandonedCreateMs ?? 30_000,
    cleanupIntervalMs: c.cleanupIntervalMs ?? 60_000,
    leaseStaleMs: c.leaseStaleMs ?? 5_000,
    stopUnhealthy: c.stopUnhealthy ?? true,
    retry: { attempts: c.retry?.attempts ?? 3, backoffMs: c.retry?.backoffMs ?? 100 },
  };
}
