import { Type, type Static } from '@worker-manager/plugin-sdk';

const Millis = (d: number, description: string) => Type.Optional(Type.Integer({ minimum: 0, default: d, description }));

const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String({ minLength: 1 })),
    operator: Type.Optional(Type.Union([Type.Literal('Exists'), Type.Literal('Equal')])),
    value: Type.Optional(Type.String()),
    effect: Type.Optional(Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')])),
    tolerationSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

/**
 * Instance config of the Kubernetes provider: one instance is one cluster and one namespace. Every field is optional;
 * without `kubeconfig` or `inCluster` the client's default loading applies (KUBECONFIG, ~/.kube/config, then the
 * in-cluster service account).
 */
export const KubernetesConfig = Type.Object(
  {
    namespace: Type.Optional(
      Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: "namespace of the workers' pods and Secrets; default: the service account's namespace in-cluster, else default" }),
    ),
    kubeconfig: Type.Optional(Type.String({ minLength: 1, description: 'path of a kubeconfig file' })),
    context: Type.Optional(Type.String({ minLength: 1, description: 'context of the kubeconfig to use; default: its current-context' })),
    inCluster: Type.Optional(Type.Boolean({ default: false, description: "use the pod's service account (the host runs in the cluster)" })),
    nodeSelector: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String(), { default: {}, description: "nodeSelector of every worker's pod" })),
    tolerations: Type.Optional(Type.Array(Toleration, { default: [], description: "tolerations of every worker's pod" })),
    priorityClassName: Type.Optional(Type.String({ minLength: 1, description: "priorityClassName of every worker's pod" })),
    serviceAccountName: Type.Optional(
      Type.String({ minLength: 1, description: 'service account of the pods; when absent no API token is mounted into workers (automountServiceAccountToken: false)' }),
    ),
    imagePullPolicy: Type.Optional(
      Type.Union([Type.Literal('IfNotPresent'), Type.Literal('Always'), Type.Literal('Never')], { default: 'IfNotPresent', description: 'imagePullPolicy of the containers' }),
    ),
    pendingTimeoutMs: Millis(300_000, 'a pod still Pending after this long fails with its pending reason (Unschedulable, ErrImagePull ...) and is stopped'),
    defaultGracePeriodMs: Millis(5_000, 'grace period of a deletion when terminateWorker gives none'),
    startTimeoutMs: Millis(120_000, 'how long restartWorker waits for the new pod to be Running'),
    gpuResourceName: Type.Optional(Type.String({ minLength: 1, default: 'nvidia.com/gpu', description: 'extended resource that resources.gpu requests' })),
    labelPrefix: Type.Optional(Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$', default: 'worker-manager', description: 'prefix of every label and annotation the plugin sets' })),
    runAsNonRoot: Type.Optional(Type.Boolean({ default: false, description: 'require a non-root user for every worker (the image or spec.user must provide one)' })),
    secretsMountPath: Type.Optional(Type.String({ pattern: '^/', default: '/run/secrets', description: 'where file secrets with a relative path appear in the worker' })),
    allowedHostPaths: Type.Optional(Type.Array(Type.String({ pattern: '^/' }), { default: [], description: 'path prefixes (on the nodes) HostPath volumes may use' })),
    orphanGraceMs: Millis(60_000, 'a Secret or NetworkPolicy of the instance that no pod owns, older than this and without its pod, is removed (a create that died half way)'),
    cleanupIntervalMs: Millis(60_000, 'how often orphans are looked for (0: only at start)'),
    checkPermissions: Type.Optional(Type.Boolean({ default: true, description: 'at start, ask the apiserver (SelfSubjectAccessReview) whether every permission the plugin needs is granted, and refuse to start without them' })),
    maxExecOutputBytes: Type.Optional(Type.Integer({ minimum: 1_024, default: 1_048_576, description: 'cap on stdout and on stderr of executeCommand' })),
  },
  { additionalProperties: false },
);
/** Kubernetes provider config as the host passes it. */
export type KubernetesConfig = Static<typeof KubernetesConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  namespace: string | undefined;
  kubeconfig: string | undefined;
  context: string | undefined;
  inCluster: boolean;
  nodeSelector: Record<string, string>;
  tolerations: Array<Static<typeof Toleration>>;
  priorityClassName: string | undefined;
  serviceAccountName: string | undefined;
  imagePullPolicy: 'IfNotPresent' | 'Always' | 'Never';
  pendingTimeoutMs: number;
  defaultGracePeriodMs: number;
  startTimeoutMs: number;
  gpuResourceName: string;
  labelPrefix: string;
  runAsNonRoot: boolean;
  secretsMountPath: string;
  allowedHostPaths: string[];
  orphanGraceMs: number;
  cleanupIntervalMs: number;
  checkPermissions: boolean;
  maxExecOutputBytes: number;
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(c: KubernetesConfig): ResolvedConfig {
  return {
    namespace: c.namespace,
    kubeconfig: c.kubeconfig,
    context: c.context,
    inCluster: c.inCluster ?? false,
    nodeSelector: c.nodeSelector ?? {},
    tolerations: c.tolerations ?? [],
    priorityClassName: c.priorityClassName,
    serviceAccountName: c.serviceAccountName,
    imagePullPolicy: c.imagePullPolicy ?? 'IfNotPresent',
    pendingTimeoutMs: c.pendingTimeoutMs ?? 300_000,
    defaultGracePeriodMs: c.defaultGracePeriodMs ?? 5_000,
    startTimeoutMs: c.startTimeoutMs ?? 120_000,
    gpuResourceName: c.gpuResourceName ?? 'nvidia.com/gpu',
    labelPrefix: c.labelPrefix ?? 'worker-manager',
    runAsNonRoot: c.runAsNonRoot ?? false,
    secretsMountPath: c.secretsMountPath ?? '/run/secrets',
    allowedHostPaths: c.allowedHostPaths ?? [],
    orphanGraceMs: c.orphanGraceMs ?? 60_000,
    cleanupIntervalMs: c.cleanupIntervalMs ?? 60_000,
    checkPermissions: c.checkPermissions ?? true,
    maxExecOutputBytes: c.maxExecOutputBytes ?? 1_048_576,
  };
}
