import { createHash } from 'node:crypto';
import type { ContainerDefinition, RegisterTaskDefinitionCommandInput, RunTaskCommandInput, Tag } from '@aws-sdk/client-ecs';
import { WorkerManagerError, type OwnerLabels, type RuntimeSpec } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** Tag keys the plugin sets besides the owner labels and the spec's labels. */
export const TAG_WORKER_ID = 'worker-manager/worker-id';
export const TAG_SPEC_HASH = 'worker-manager/spec-hash';
/** ECS allows 50 tags per task. */
const MAX_TAGS = 50;

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Hash of a spec (it holds no secret values) that tells a repeated create from a different one. */
export const specHash = (spec: RuntimeSpec): string => sha256(canonical(spec)).slice(0, 32);

/**
 * `startedBy` of every task of this instance: ListTasks filters by it exactly, so it names the instance, not the
 * worker (the worker id is a tag). A hash keeps it within ECS's 36-character limit of StartTask and its character set.
 */
export const startedByOf = (owner: OwnerLabels): string => `wm-${sha256(`${owner['worker-manager/host']}\n${owner['worker-manager/instance']}`).slice(0, 24)}`;

/**
 * RunTask's clientToken (at most 64 characters): the same for every attempt to create one worker, so a retried or
 * concurrent RunTask gives one task, and one with other parameters is refused by ECS (ConflictException).
 */
export const clientTokenOf = (cluster: string, startedBy: string, workerId: string, failedAttempts = 0): string =>
  sha256(`${cluster}\n${startedBy}\n${workerId}${failedAttempts === 0 ? '' : `\n${failedAttempts}`}`);

/** Fargate's CPU sizes (units) and the memory each allows (MiB): [cpu, min, max, step]. */
const FARGATE_SIZES: ReadonlyArray<readonly [number, number, number, number]> = [
  [256, 512, 2_048, 512],
  [512, 1_024, 4_096, 1_024],
  [1_024, 2_048, 8_192, 1_024],
  [2_048, 4_096, 16_384, 1_024],
  [4_096, 8_192, 30_720, 1_024],
  [8_192, 16_384, 61_440, 4_096],
  [16_384, 32_768, 122_880, 8_192],
];

/** Task size in ECS units (1 vCPU = 1024) and MiB; on Fargate the smallest valid size that holds the request. */
export function taskSize(spec: RuntimeSpec, config: ResolvedConfig): { cpu: number; memory: number } {
  const cpu = Math.ceil(((spec.resources?.cpuMillicores ?? config.defaultCpuMillicores) * 1024) / 1000);
  const memory = spec.resources?.memoryMiB ?? config.defaultMemoryMiB;
  if (config.launchType !== 'FARGATE') return { cpu, memory };
  for (const [c, min, max, step] of FARGATE_SIZES) {
    if (c < cpu) continue;
    const m = Math.max(min, Math.ceil(memory / step) * step);
    if (m <= max) return { cpu: c, memory: m };
  }
  throw new WorkerManagerError('WM_ERR_VALIDATION', `no Fargate task size holds ${cpu} CPU units and ${memory} MiB`, { details: { cpuUnits: cpu, memoryMiB: memory } });
}

/** The tags of a worker's task: its spec's labels, the owner labels, its id and its spec hash. */
export function taskTags(workerId: string, spec: RuntimeSpec, owner: OwnerLabels): Tag[] {
  const tags: Record<string, string> = { ...spec.labels, ...owner, [TAG_WORKER_ID]: workerId, [TAG_SPEC_HASH]: specHash(spec) };
  const keys = Object.keys(tags);
  const reserved = keys.find((k) => k.toLowerCase().startsWith('aws:'));
  if (reserved !== undefined) throw new WorkerManagerError('WM_ERR_VALIDATION', `label '${reserved}': keys starting with 'aws:' are reserved by AWS`, { details: { workerId, label: reserved } });
  if (keys.length > MAX_TAGS) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', `worker '${workerId}' has ${keys.length - 4} labels; ECS allows ${MAX_TAGS - 4} (the plugin uses 4 of its 50 tags)`, { details: { workerId } });
  }
  return keys.map((key) => ({ key, value: tags[key] }));
}

/** Refuses what a task cannot honour (the host routes such specs elsewhere; this guards direct calls). */
export function checkSupported(workerId: string, spec: RuntimeSpec): void {
  const unsupported: string[] = [];
  if ((spec.ports?.length ?? 0) > 0) unsupported.push('ports');
  if ((spec.volumes?.length ?? 0) > 0) unsupported.push('volumes');
  if (spec.healthCheck !== undefined) unsupported.push('healthCheck');
  if ((spec.resources?.gpu ?? 0) > 0) unsupported.push('resources.gpu');
  if ((spec.secretRefs?.length ?? 0) > 0) unsupported.push('secretRefs');
  const isolation = spec.network?.isolation;
  if (isolation === 'Strict' || isolation === 'Complete') unsupported.push('network.isolation');
  if (unsupported.length > 0) {
    throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `the aws-ecs provider does not support ${unsupported.join(', ')} (worker '${workerId}')`, { details: { workerId, unsupported } });
  }
}

const environmentOf = (spec: RuntimeSpec): Array<{ name: string; value: string }> => Object.entries(spec.env ?? {}).map(([name, value]) => ({ name, value }));

const awsvpc = (config: ResolvedConfig): boolean => config.launchType === 'FARGATE' || config.subnets.length > 0;

/** The task definition registered for a spec: its family is named after a hash of its content, so equal specs share it. */
export function taskDefinitionFor(spec: RuntimeSpec, config: ResolvedConfig, region: string, owner: OwnerLabels): RegisterTaskDefinitionCommandInput {
  if (spec.image === undefined) throw new WorkerManagerError('WM_ERR_VALIDATION', 'an ECS worker needs spec.image (or config.taskDefinition)');
  const size = taskSize(spec, config);
  const container: ContainerDefinition = {
    name: config.containerName,
    image: spec.image,
    essential: true,
    ...(spec.command === undefined ? {} : { entryPoint: [...spec.command] }),
    ...(spec.args === undefined ? {} : { command: [...spec.args] }),
    environment: environmentOf(spec),
    ...(spec.workingDir === undefined ? {} : { workingDirectory: spec.workingDir }),
    ...(spec.user === undefined ? {} : { user: spec.user }),
    ...(spec.readOnlyRootFilesystem === undefined ? {} : { readonlyRootFilesystem: spec.readOnlyRootFilesystem }),
    stopTimeout: config.stopTimeoutSeconds,
    linuxParameters: { initProcessEnabled: config.initProcessEnabled },
    logConfiguration: {
      logDriver: 'awslogs',
      options: { 'awslogs-group': config.logGroup, 'awslogs-region': region, 'awslogs-stream-prefix': config.logStreamPrefix, 'awslogs-create-group': 'true' },
    },
  };
  const body = {
    requiresCompatibilities: [config.launchType],
    networkMode: awsvpc(config) ? 'awsvpc' : 'bridge',
    cpu: String(size.cpu),
    memory: String(size.memory),
    ...(config.executionRoleArn === undefined ? {} : { executionRoleArn: config.executionRoleArn }),
    ...(config.taskRoleArn === undefined ? {} : { taskRoleArn: config.taskRoleArn }),
    containerDefinitions: [container],
  } satisfies Omit<RegisterTaskDefinitionCommandInput, 'family'>;
  return {
    family: `${config.familyPrefix}-${sha256(canonical(body)).slice(0, 32)}`,
    ...body,
    tags: Object.entries(owner).map(([key, value]) => ({ key, value })),
  };
}

/** RunTask's input for one worker. `taskDefinition` is a family (its latest revision) or the configured one. */
export function runTaskInput(args: {
  workerId: string;
  spec: RuntimeSpec;
  config: ResolvedConfig;
  taskDefinition: string;
  startedBy: string;
  owner: OwnerLabels;
  /** RunTask calls of this worker that started nothing (see RunAttempts). */
  failedAttempts: number;
}): RunTaskCommandInput {
  const { workerId, spec, config } = args;
  const configured = config.taskDefinition !== undefined;
  const command = [...(spec.command ?? []), ...(spec.args ?? [])];
  const size = spec.resources === undefined ? undefined : taskSize(spec, config);
  return {
    cluster: config.cluster,
    taskDefinition: args.taskDefinition,
    launchType: config.launchType,
    count: 1,
    startedBy: args.startedBy,
    clientToken: clientTokenOf(config.cluster, args.startedBy, workerId, args.failedAttempts),
    tags: taskTags(workerId, spec, args.owner),
    ...(awsvpc(config)
      ? {
          networkConfiguration: {
            awsvpcConfiguration: { subnets: config.subnets, securityGroups: config.securityGroups, assignPublicIp: config.assignPublicIp ? 'ENABLED' : 'DISABLED' },
          },
        }
      : {}),
    // A configured task definition is shared by every worker: what differs per worker goes in overrides (ECS has no
    // entryPoint override, so command and args become the container's command).
    ...(configured
      ? {
          overrides: {
            containerOverrides: [{ name: config.containerName, ...(command.length === 0 ? {} : { command }), environment: environmentOf(spec) }],
            ...(size === undefined ? {} : { cpu: String(size.cpu), memory: String(size.memory) }),
          },
        }
      : {}),
  };
}
