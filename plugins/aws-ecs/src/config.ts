import { Type, type Static } from '@worker-manager/plugin-sdk';

const Retry = Type.Object(
  {
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 5, description: 'attempts per AWS call, the first included, for throttling, 5xx, timeouts and connection failures' })),
    baseDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000, default: 200, description: 'backoff before the second attempt; doubles each attempt, with full jitter' })),
    maxDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 300_000, default: 5_000, description: 'longest backoff between two attempts' })),
  },
  { additionalProperties: false, default: {}, description: 'How AWS calls are retried' },
);

const Capacity = Type.Object(
  {
    cpuMillicores: Type.Optional(Type.Integer({ minimum: 0, default: 64_000, description: 'total CPU the instance may hand out (1 vCPU = 1000)' })),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 0, default: 131_072, description: 'total memory the instance may hand out' })),
    maxWorkers: Type.Optional(Type.Integer({ minimum: 1, default: 100, description: 'tasks that may run at once (keep it under the account quota)' })),
  },
  { additionalProperties: false, default: {}, description: 'What getCapacity reports: ECS has no cluster-wide free capacity for Fargate, so the operator states it' },
);

/**
 * Instance config of the AWS ECS provider: one instance is one cluster in one region. AWS credentials never appear
 * here: the SDK's standard chain finds them in the environment granted to the plugin.
 */
export const AwsEcsConfig = Type.Object(
  {
    region: Type.Optional(Type.String({ pattern: '^[a-z]{2}(-[a-z]+)+-\\d+$', description: 'AWS region; default: AWS_REGION of the granted environment' })),
    endpoint: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'ECS endpoint URL instead of the regional one (a VPC endpoint, or a test double)' })),
    logsEndpoint: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'CloudWatch Logs endpoint URL instead of the regional one' })),
    cluster: Type.String({ minLength: 1, maxLength: 2048, description: 'cluster name or ARN the tasks run in' }),
    launchType: Type.Optional(Type.Union([Type.Literal('FARGATE'), Type.Literal('EC2')], { default: 'FARGATE', description: 'launch type of every task' })),
    subnets: Type.Optional(Type.Array(Type.String({ pattern: '^subnet-[0-9a-f]+$' }), { maxItems: 16, default: [], description: 'awsvpc subnets (required for FARGATE)' })),
    securityGroups: Type.Optional(Type.Array(Type.String({ pattern: '^sg-[0-9a-f]+$' }), { maxItems: 5, default: [], description: 'awsvpc security groups' })),
    assignPublicIp: Type.Optional(Type.Boolean({ default: false, description: 'give each task a public IP (a Fargate task in a public subnet needs one to pull from a public registry)' })),
    taskDefinition: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: "a registered task definition (family, family:revision or ARN) to run every worker with; the worker's image must then be absent or equal to the container's, its command and env are passed as overrides. Default: one task definition per spec, registered by the plugin",
      }),
    ),
    containerName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,255}$', default: 'worker', description: "name of the worker's container (in a configured taskDefinition: the container the overrides go to)" })),
    familyPrefix: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', default: 'worker-manager', description: 'family prefix of the task definitions the plugin registers' })),
    executionRoleArn: Type.Optional(Type.String({ pattern: '^arn:aws[a-z-]*:iam::\\d{12}:role/.+$', description: 'task execution role (pulls from ECR, writes CloudWatch Logs); required by Fargate with awslogs' })),
    taskRoleArn: Type.Optional(Type.String({ pattern: '^arn:aws[a-z-]*:iam::\\d{12}:role/.+$', description: 'IAM role of the worker itself; default: none' })),
    logGroup: Type.String({ pattern: '^[.\\-_/#A-Za-z0-9]{1,512}$', description: 'CloudWatch Logs group of the awslogs driver' }),
    logStreamPrefix: Type.Optional(Type.String({ pattern: '^[^:*]{1,200}$', default: 'worker-manager', description: 'awslogs-stream-prefix: streams are named <prefix>/<container>/<task id>' })),
    defaultCpuMillicores: Type.Optional(Type.Integer({ minimum: 1, default: 250, description: 'CPU of a worker whose spec asks none' })),
    defaultMemoryMiB: Type.Optional(Type.Integer({ minimum: 4, default: 512, description: 'memory of a worker whose spec asks none' })),
    stopTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 120, default: 30, description: 'SIGTERM to SIGKILL delay of StopTask (the container stopTimeout; ECS cannot take one per call)' })),
    initProcessEnabled: Type.Optional(Type.Boolean({ default: true, description: 'run an init process as PID 1 so that SIGTERM reaches the command' })),
    terminateWaitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000, default: 25_000, description: 'how long terminateWorker waits for STOPPED after StopTask before answering Terminating' })),
    pollIntervalMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 60_000, default: 1_000, description: 'how often a followed log and a terminate poll AWS' })),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000, description: 'deadline of one attempt of an AWS call' })),
    caFile: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM file of CA certificates to trust besides the public ones (a private endpoint, a TLS-inspecting proxy); relative paths are in the instance state folder' }),
    ),
    retry: Type.Optional(Retry),
    capacity: Type.Optional(Capacity),
  },
  { additionalProperties: false },
);
/** Config as the host passes it. */
export type AwsEcsConfig = Static<typeof AwsEcsConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  region: string | undefined;
  endpoint: string | undefined;
  logsEndpoint: string | undefined;
  cluster: string;
  launchType: 'FARGATE' | 'EC2';
  subnets: string[];
  securityGroups: string[];
  assignPublicIp: boolean;
  taskDefinition: string | undefined;
  containerName: string;
  familyPrefix: string;
  executionRoleArn: string | undefined;
  taskRoleArn: string | undefined;
  logGroup: string;
  logStreamPrefix: string;
  defaultCpuMillicores: number;
  defaultMemoryMiB: number;
  stopTimeoutSeconds: number;
  initProcessEnabled: boolean;
  terminateWaitMs: number;
  pollIntervalMs: number;
  requestTimeoutMs: number;
  caFile: string | undefined;
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  capacity: { cpuMillicores: number; memoryMiB: number; maxWorkers: number };
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(c: AwsEcsConfig): ResolvedConfig {
  return {
    region: c.region,
    endpoint: c.endpoint,
    logsEndpoint: c.logsEndpoint,
    cluster: c.cluster,
    launchType: c.launchType ?? 'FARGATE',
    subnets: c.subnets ?? [],
    securityGroups: c.securityGroups ?? [],
    assignPublicIp: c.assignPublicIp ?? false,
    taskDefinition: c.taskDefinition,
    containerName: c.containerName ?? 'worker',
    familyPrefix: c.familyPrefix ?? 'worker-manager',
    executionRoleArn: c.executionRoleArn,
    taskRoleArn: c.taskRoleArn,
    logGroup: c.logGroup,
    logStreamPrefix: c.logStreamPrefix ?? 'worker-manager',
    defaultCpuMillicores: c.defaultCpuMillicores ?? 250,
    defaultMemoryMiB: c.defaultMemoryMiB ?? 512,
    stopTimeoutSeconds: c.stopTimeoutSeconds ?? 30,
    initProcessEnabled: c.initProcessEnabled ?? true,
    terminateWaitMs: c.terminateWaitMs ?? 25_000,
    pollIntervalMs: c.pollIntervalMs ?? 1_000,
    requestTimeoutMs: c.requestTimeoutMs ?? 10_000,
    caFile: c.caFile,
    retry: { maxAttempts: c.retry?.maxAttempts ?? 5, baseDelayMs: c.retry?.baseDelayMs ?? 200, maxDelayMs: c.retry?.maxDelayMs ?? 5_000 },
    capacity: { cpuMillicores: c.capacity?.cpuMillicores ?? 64_000, memoryMiB: c.capacity?.memoryMiB ?? 131_072, maxWorkers: c.capacity?.maxWorkers ?? 100 },
  };
}
