/**
 * A protocol double of AWS ECS and CloudWatch Logs for tests: one HTTP server speaking AWS JSON 1.1 (`POST /`,
 * `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Op>` and `Logs_20140328.<Op>`), checking SigV4 (service `ecs` or
 * `logs` in the credential scope) with the secret key it holds for each access key id, and answering AWS's error
 * shapes (`{"__type", "message"}` with `x-amzn-errortype`; awsEcsWire.ts). Each task runs as a real Docker
 * container (awsEcsContainers.ts): its lastStatus, exit code and stopCode follow the container, and GetLogEvents
 * (awsEcsLogs.ts) serves the container's output as an awslogs stream `<prefix>/<container>/<task id>`.
 *
 * ECS: RegisterTaskDefinition, DescribeTaskDefinition, RunTask (clientToken idempotency, failures[]), DescribeTasks,
 * ListTasks, StopTask. Logs: CreateLogGroup, GetLogEvents. Faults: throttling or any error per operation, and RunTask
 * failures[] (`RESOURCE:MEMORY`, `AGENT` ...).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type Docker from 'dockerode';
import { awaitExit, createContainer, dockerClient, ECS_DOUBLE_LABEL, hasImage, removeDoubleContainers } from './awsEcsContainers.ts';
import { CloudWatchLogsModel } from './awsEcsLogs.ts';
import { AwsError, startAwsJsonServer, type Body, type RecordedCall, type WireFault } from './awsEcsWire.ts';

/** A key pair the double accepts. */
export interface EcsPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What the next matching requests get instead of an answer. */
export type EcsFault = WireFault;

/** Which requests a fault applies to. */
export interface EcsFaultOptions {
  /** How many requests get it; default every request until clearFaults. */
  count?: number;
  /** Only this operation (`RunTask`, `GetLogEvents`); default any. */
  operation?: string;
}

/** One request the double received. */
export type EcsRecordedCall = RecordedCall;

/** A running double. */
export interface EcsDouble {
  /** Endpoint for both clients (`endpoint`). */
  readonly url: string;
  readonly region: string;
  readonly accountId: string;
  /** Value of the {@link ECS_DOUBLE_LABEL} label on this double's containers. */
  readonly id: string;
  readonly calls: readonly EcsRecordedCall[];
  injectFault(fault: EcsFault, options?: EcsFaultOptions): void;
  /** The next `count` RunTask calls start nothing and answer `failures: [{arn, reason, detail}]` (HTTP 200). */
  injectRunTaskFailure(failure: { reason: string; detail?: string }, count?: number): void;
  clearFaults(): void;
  /** The Docker container of a task, once it has one (for tests that act behind the plugin's back). */
  containerOf(taskArnOrId: string): Docker.Container | undefined;
  /** ARNs of every task the double knows. */
  taskArns(): string[];
  close(): Promise<void>;
}

export interface EcsDoubleOptions {
  region?: string;
  accountId?: string;
  principals?: readonly EcsPrincipal[];
  /** Cluster names that exist; default `['default']`. */
  clusters?: readonly string[];
  /** How long a task stays PROVISIONING before the double makes its container; default 0. */
  provisioningDelayMs?: number;
}

const ECS_PREFIX = 'AmazonEC2ContainerServiceV20141113.';
const LOGS_PREFIX = 'Logs_20140328.';
const MAX_TAGS = 50;
const FAMILY = /^[A-Za-z0-9_-]{1,255}$/;
const STARTED_BY = /^[A-Za-z0-9/_-]{1,128}$/;

type Tag = { key: string; value: string };

const invalid = (message: string): AwsError => new AwsError(400, 'InvalidParameterException', message);
const client = (message: string): AwsError => new AwsError(400, 'ClientException', message);

interface ContainerDef {
  name: string;
  image: string;
  entryPoint?: string[];
  command?: string[];
  environment?: Array<{ name: string; value: string }>;
  workingDirectory?: string;
  user?: string;
  readonlyRootFilesystem?: boolean;
  stopTimeout?: number;
  memory?: number;
  cpu?: number;
  linuxParameters?: { initProcessEnabled?: boolean };
  logConfiguration?: { logDriver: string; options?: Record<string, string> };
  essential?: boolean;
}

interface TaskDefinition {
  taskDefinitionArn: string;
  family: string;
  revision: number;
  status: 'ACTIVE' | 'INACTIVE';
  containerDefinitions: ContainerDef[];
  cpu?: string;
  memory?: string;
  networkMode: string;
  requiresCompatibilities: string[];
  executionRoleArn?: string;
  taskRoleArn?: string;
  registeredAt: number;
  tags: Tag[];
}

interface ContainerOverride {
  name: string;
  command?: string[];
  environment?: Array<{ name: string; value: string }>;
}

interface TaskRecord {
  taskArn: string;
  taskId: string;
  clusterArn: string;
  def: TaskDefinition;
  startedBy: string | undefined;
  tags: Tag[];
  launchType: string;
  cpu: string | undefined;
  memory: string | undefined;
  overrides: { containerOverrides: ContainerOverride[]; cpu?: string; memory?: string };
  createdAt: number;
  lastStatus: string;
  desiredStatus: 'RUNNING' | 'STOPPED';
  version: number;
  pullStartedAt?: number;
  pullStoppedAt?: number;
  startedAt?: number;
  stoppingAt?: number;
  stoppedAt?: number;
  stopCode?: string;
  stoppedReason?: string;
  /** The stop asked by StopTask, applied when the container ends. */
  stopRequest?: string;
  containerArn: string;
  containerStatus: string;
  exitCode?: number;
  containerReason?: string;
  container?: Docker.Container;
  logGroup?: string;
  logStream?: string;
}

const seconds = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / 1000);

function stringList(value: unknown, what: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new AwsError(400, 'SerializationException', `${what} must be a list of strings`);
  return value as string[];
}

function tagList(value: unknown): Tag[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new AwsError(400, 'SerializationException', 'tags must be a list');
  const tags = value as Array<{ key?: unknown; value?: unknown }>;
  if (tags.length > MAX_TAGS) throw invalid(`Tags cannot be more than ${MAX_TAGS}.`);
  return tags.map((t) => {
    if (typeof t.key !== 'string' || t.key.length < 1 || t.key.length > 128) throw invalid('Tag keys must be between 1 and 128 characters.');
    if (t.key.toLowerCase().startsWith('aws:')) throw invalid("Tag keys starting with 'aws:' are reserved.");
    const v = typeof t.value === 'string' ? t.value : '';
    if (v.length > 256) throw invalid('Tag values must be at most 256 characters.');
    return { key: t.key, value: v };
  });
}

/** Starts a double on a free port of 127.0.0.1. */
export async function startEcsDouble(options: EcsDoubleOptions = {}): Promise<EcsDouble> {
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '123456789012';
  const id = randomBytes(6).toString('hex');
  const docker = dockerClient();
  const clusters = new Map((options.clusters ?? ['default']).map((name) => [name, `arn:aws:ecs:${region}:${accountId}:cluster/${name}`]));
  const provisioningDelayMs = options.provisioningDelayMs ?? 0;
  const definitions = new Map<string, TaskDefinition[]>();
  const tasks = new Map<string, TaskRecord>();
  const tokens = new Map<string, { hash: string; arns: string[]; failures?: Body[] }>();
  // awslogs streams are found by group and name; a stream exists once its task's container has started.
  const cloudWatch = new CloudWatchLogsModel((group, stream) => [...tasks.values()].find((x) => x.logGroup === group && x.logStream === stream && x.startedAt !== undefined)?.container);
  const runners = new Set<Promise<void>>();
  let faults: Array<{ fault: EcsFault; remaining: number; operation?: string }> = [];
  let runTaskFailures: Array<{ reason: string; detail?: string; remaining: number }> = [];
  let closed = false;

  // ------------------------------------------------------------------ task definitions

  function resolveDefinition(ref: string): TaskDefinition | undefined {
    const name = ref.startsWith('arn:') ? ref.slice(ref.indexOf('task-definition/') + 'task-definition/'.length) : ref;
    const [family, rev] = name.split(':');
    const revisions = definitions.get(family ?? '') ?? [];
    if (rev === undefined) return revisions.filter((d) => d.status === 'ACTIVE').at(-1);
    return revisions.find((d) => d.revision === Number(rev));
  }

  function definitionJson(d: TaskDefinition): Body {
    const { tags: _tags, registeredAt, ...rest } = d;
    return { ...rest, registeredAt: seconds(registeredAt) };
  }

  function registerTaskDefinition(body: Body): Body {
    const family = body['family'];
    if (typeof family !== 'string' || !FAMILY.test(family)) throw client('Family contains invalid characters or is too long.');
    const containers = body['containerDefinitions'];
    if (!Array.isArray(containers) || containers.length === 0) throw client('Container list cannot be empty.');
    for (const c of containers as ContainerDef[]) {
      if (typeof c.name !== 'string' || c.name === '') throw client('Container.name should not be null or empty.');
      if (typeof c.image !== 'string' || c.image === '') throw client('Container.image should not be null or empty.');
    }
    const compat = stringList(body['requiresCompatibilities'], 'requiresCompatibilities') ?? ['EC2'];
    const networkMode = typeof body['networkMode'] === 'string' ? body['networkMode'] : 'bridge';
    if (compat.includes('FARGATE')) {
      if (networkMode !== 'awsvpc') throw client('Fargate only supports network mode \u2018awsvpc\u2019.');
      if (typeof body['cpu'] !== 'string' || typeof body['memory'] !== 'string') throw client('Fargate requires that \'cpu\' be defined at the task level.');
      const awslogs = (containers as ContainerDef[]).some((c) => c.logConfiguration?.logDriver === 'awslogs');
      if (awslogs && body['executionRoleArn'] === undefined) throw client('Fargate requires task definition to have execution role ARN to support log driver awslogs.');
    }
    const revisions = definitions.get(family) ?? [];
    const revision = (revisions.at(-1)?.revision ?? 0) + 1;
    const def: TaskDefinition = {
      taskDefinitionArn: `arn:aws:ecs:${region}:${accountId}:task-definition/${family}:${revision}`,
      family,
      revision,
      status: 'ACTIVE',
      containerDefinitions: structuredClone(containers as ContainerDef[]),
      ...(typeof body['cpu'] === 'string' ? { cpu: body['cpu'] } : {}),
      ...(typeof body['memory'] === 'string' ? { memory: body['memory'] } : {}),
      networkMode,
      requiresCompatibilities: compat,
      ...(typeof body['executionRoleArn'] === 'string' ? { executionRoleArn: body['executionRoleArn'] } : {}),
      ...(typeof body['taskRoleArn'] === 'string' ? { taskRoleArn: body['taskRoleArn'] } : {}),
      registeredAt: Date.now(),
      tags: tagList(body['tags']),
    };
    definitions.set(family, [...revisions, def]);
    return { taskDefinition: definitionJson(def), tags: def.tags };
  }

  function describeTaskDefinition(body: Body): Body {
    const ref = body['taskDefinition'];
    if (typeof ref !== 'string') throw client('TaskDefinition can not be blank.');
    const def = resolveDefinition(ref);
    if (def === undefined) throw client('Unable to describe task definition.');
    const include = stringList(body['include'], 'include') ?? [];
    return { taskDefinition: definitionJson(def), ...(include.includes('TAGS') ? { tags: def.tags } : {}) };
  }

  // ------------------------------------------------------------------ tasks

  function clusterArnOf(value: unknown): string {
    const name = typeof value === 'string' ? (value.startsWith('arn:') ? value.slice(value.lastIndexOf('/') + 1) : value) : 'default';
    const arn = clusters.get(name);
    if (arn === undefined) throw new AwsError(400, 'ClusterNotFoundException', 'Cluster not found.');
    return arn;
  }

  function findTask(ref: string, clusterArn: string): TaskRecord | undefined {
    const task = tasks.get(ref) ?? [...tasks.values()].find((t) => t.taskId === ref);
    return task?.clusterArn === clusterArn ? task : undefined;
  }

  function taskJson(t: TaskRecord, withTags: boolean): Body {
    const container = t.def.containerDefinitions[0]!;
    return {
      taskArn: t.taskArn,
      clusterArn: t.clusterArn,
      taskDefinitionArn: t.def.taskDefinitionArn,
      lastStatus: t.lastStatus,
      desiredStatus: t.desiredStatus,
      launchType: t.launchType,
      ...(t.cpu === undefined ? {} : { cpu: t.cpu }),
      ...(t.memory === undefined ? {} : { memory: t.memory }),
      ...(t.startedBy === undefined ? {} : { startedBy: t.startedBy }),
      group: `family:${t.def.family}`,
      createdAt: seconds(t.createdAt),
      ...(t.pullStartedAt === undefined ? {} : { pullStartedAt: seconds(t.pullStartedAt) }),
      ...(t.pullStoppedAt === undefined ? {} : { pullStoppedAt: seconds(t.pullStoppedAt) }),
      ...(t.startedAt === undefined ? {} : { startedAt: seconds(t.startedAt) }),
      ...(t.stoppingAt === undefined ? {} : { stoppingAt: seconds(t.stoppingAt) }),
      ...(t.stoppedAt === undefined ? {} : { stoppedAt: seconds(t.stoppedAt) }),
      ...(t.stopCode === undefined ? {} : { stopCode: t.stopCode }),
      ...(t.stoppedReason === undefined ? {} : { stoppedReason: t.stoppedReason }),
      version: t.version,
      overrides: t.overrides,
      containers: [
        {
          containerArn: t.containerArn,
          taskArn: t.taskArn,
          name: container.name,
          image: container.image,
          lastStatus: t.containerStatus,
          ...(t.exitCode === undefined ? {} : { exitCode: t.exitCode }),
          ...(t.containerReason === undefined ? {} : { reason: t.containerReason }),
        },
      ],
      ...(withTags ? { tags: t.tags } : {}),
    };
  }

  function move(t: TaskRecord, lastStatus: string): void {
    t.lastStatus = lastStatus;
    t.version += 1;
  }

  function stop(t: TaskRecord, stopCode: string, reason: string, exit?: { exitCode?: number; containerReason?: string }): void {
    if (t.lastStatus === 'STOPPED') return;
    const now = Date.now();
    t.stopCode = stopCode;
    t.stoppedReason = reason;
    t.desiredStatus = 'STOPPED';
    t.stoppingAt ??= now;
    t.stoppedAt = now;
    t.containerStatus = 'STOPPED';
    if (exit?.exitCode !== undefined) t.exitCode = exit.exitCode;
    if (exit?.containerReason !== undefined) t.containerReason = exit.containerReason;
    move(t, 'STOPPED');
  }

  /** Runs one task's container and moves the task through its states as the container goes. */
  async function runTask(t: TaskRecord): Promise<void> {
    const def = t.def.containerDefinitions[0]!;
    const override = t.overrides.containerOverrides.find((o) => o.name === def.name);
    // Never before RunTask has answered: a new task is PROVISIONING, as ECS reports it.
    await new Promise((resolve) => setTimeout(resolve, provisioningDelayMs));
    if (closed) return;
    if (t.stopRequest !== undefined) return stop(t, 'UserInitiated', t.stopRequest);
    move(t, 'PENDING');
    t.pullStartedAt = Date.now();
    const present = await hasImage(docker, def.image);
    t.pullStoppedAt = Date.now();
    if (!present) {
      const message = `CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref ${def.image}: not found`;
      return stop(t, 'TaskFailedToStart', message, { containerReason: message });
    }
    const log = def.logConfiguration?.logDriver === 'awslogs' ? def.logConfiguration.options ?? {} : undefined;
    if (log !== undefined) {
      const group = log['awslogs-group'] ?? '';
      if (!cloudWatch.groups.has(group)) {
        if (log['awslogs-create-group'] !== 'true') {
          return stop(t, 'TaskFailedToStart', `ResourceInitializationError: failed to validate logger args: The specified log group does not exist. : exit status 1`);
        }
        cloudWatch.groups.add(group);
      }
      t.logGroup = group;
      t.logStream = `${log['awslogs-stream-prefix'] ?? ''}/${def.name}/${t.taskId}`;
    }
    const env: Record<string, string> = {};
    for (const e of [...(def.environment ?? []), ...(override?.environment ?? [])]) env[e.name] = e.value;
    const memory = Number(t.memory ?? def.memory ?? 0);
    const cpu = Number(t.cpu ?? def.cpu ?? 0);
    let container: Docker.Container;
    try {
      container = await createContainer(docker, {
        image: def.image,
        ...(def.entryPoint === undefined ? {} : { entryPoint: def.entryPoint }),
        ...((override?.command ?? def.command) === undefined ? {} : { command: override?.command ?? def.command! }),
        env,
        ...(def.workingDirectory === undefined ? {} : { workingDirectory: def.workingDirectory }),
        ...(def.user === undefined ? {} : { user: def.user }),
        ...(def.readonlyRootFilesystem === undefined ? {} : { readonlyRootFilesystem: def.readonlyRootFilesystem }),
        ...(memory > 0 ? { memoryMiB: memory } : {}),
        ...(cpu > 0 ? { cpuUnits: cpu } : {}),
        init: def.linuxParameters?.initProcessEnabled === true,
        stopTimeoutSeconds: def.stopTimeout ?? 30,
        labels: { [ECS_DOUBLE_LABEL]: id, 'wm-test/aws-ecs-task': t.taskArn },
      });
    } catch (error) {
      const message = `CannotCreateContainerError: ${String(error instanceof Error ? error.message : error).split('\n')[0]}`;
      return stop(t, 'TaskFailedToStart', message, { containerReason: message });
    }
    t.container = container;
    if (t.stopRequest !== undefined) return stop(t, 'UserInitiated', t.stopRequest);
    try {
      await container.start();
    } catch (error) {
      const message = `CannotStartContainerError: ${String(error instanceof Error ? error.message : error).split('\n')[0]}`;
      return stop(t, 'TaskFailedToStart', message, { containerReason: message });
    }
    t.startedAt = Date.now();
    t.containerStatus = 'RUNNING';
    if (t.stopRequest === undefined) move(t, 'RUNNING');
    else void container.stop().catch(() => undefined);
    const exit = await awaitExit(container);
    if (closed) return;
    const containerReason = exit.oomKilled ? 'OutOfMemoryError: Container killed due to memory usage' : undefined;
    if (t.stopRequest !== undefined) stop(t, 'UserInitiated', t.stopRequest, { exitCode: exit.exitCode, ...(containerReason === undefined ? {} : { containerReason }) });
    else stop(t, 'EssentialContainerExited', 'Essential container in task exited', { exitCode: exit.exitCode, ...(containerReason === undefined ? {} : { containerReason }) });
  }

  function runTaskOp(body: Body): Body {
    const clusterArn = clusterArnOf(body['cluster']);
    const ref = body['taskDefinition'];
    if (typeof ref !== 'string') throw invalid('TaskDefinition can not be blank.');
    const def = resolveDefinition(ref);
    if (def === undefined) throw client('Unable to describe task definition.');
    const launchType = typeof body['launchType'] === 'string' ? body['launchType'] : 'EC2';
    if (!def.requiresCompatibilities.includes(launchType) && launchType === 'FARGATE') throw invalid(`Task definition does not support launch_type ${launchType}.`);
    const count = typeof body['count'] === 'number' ? body['count'] : 1;
    if (!Number.isInteger(count) || count < 1 || count > 10) throw invalid('count must be between 1 and 10.');
    const startedBy = body['startedBy'];
    if (startedBy !== undefined && (typeof startedBy !== 'string' || !STARTED_BY.test(startedBy))) throw invalid('startedBy must be at most 128 letters, numbers, hyphens, forward slashes and underscores.');
    const network = (body['networkConfiguration'] as { awsvpcConfiguration?: { subnets?: unknown } } | undefined)?.awsvpcConfiguration;
    if (def.networkMode === 'awsvpc') {
      if (network === undefined) throw invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.");
      if (!Array.isArray(network.subnets) || network.subnets.length === 0) throw invalid('subnets can not be empty.');
    }
    const tags = tagList(body['tags']);
    const overrides = (body['overrides'] ?? {}) as { containerOverrides?: ContainerOverride[]; cpu?: string; memory?: string };
    for (const o of overrides.containerOverrides ?? []) {
      if (!def.containerDefinitions.some((c) => c.name === o.name)) throw invalid('Override for container named ' + String(o.name) + ' is not a container in the TaskDefinition.');
    }
    const token = body['clientToken'];
    const { clientToken: _t, ...rest } = body;
    const hash = createHash('sha256').update(JSON.stringify(rest)).digest('hex');
    if (typeof token === 'string') {
      if (token.length > 64) throw invalid('clientToken must be at most 64 characters.');
      const seen = tokens.get(`${clusterArn}\n${token}`);
      if (seen !== undefined) {
        if (seen.hash !== hash) {
          throw new AwsError(400, 'ConflictException', 'The request uses the same client token as a previous, but non-identical request. Do not reuse a client token with different requests, unless the requests are identical.');
        }
        // The original result, failures included (ECS keeps a token's result for 24 hours).
        return { tasks: seen.arns.map((arn) => taskJson(tasks.get(arn)!, true)), failures: seen.failures ?? [] };
      }
    }
    const failure = runTaskFailures.find((f) => f.remaining > 0);
    if (failure !== undefined) {
      failure.remaining -= 1;
      runTaskFailures = runTaskFailures.filter((f) => f.remaining > 0);
      const failures = [{ arn: clusterArn, reason: failure.reason, ...(failure.detail === undefined ? {} : { detail: failure.detail }) }];
      if (typeof token === 'string') tokens.set(`${clusterArn}\n${token}`, { hash, arns: [], failures });
      return { tasks: [], failures };
    }
    const started: TaskRecord[] = [];
    const clusterName = clusterArn.slice(clusterArn.lastIndexOf('/') + 1);
    for (let i = 0; i < count; i++) {
      const taskId = randomBytes(16).toString('hex');
      const t: TaskRecord = {
        taskArn: `arn:aws:ecs:${region}:${accountId}:task/${clusterName}/${taskId}`,
        taskId,
        clusterArn,
        def,
        startedBy: startedBy as string | undefined,
        tags,
        launchType,
        cpu: overrides.cpu ?? def.cpu,
        memory: overrides.memory ?? def.memory,
        overrides: { containerOverrides: overrides.containerOverrides ?? [], ...(overrides.cpu === undefined ? {} : { cpu: overrides.cpu }), ...(overrides.memory === undefined ? {} : { memory: overrides.memory }) },
        createdAt: Date.now(),
        lastStatus: 'PROVISIONING',
        desiredStatus: 'RUNNING',
        version: 1,
        containerArn: `arn:aws:ecs:${region}:${accountId}:container/${clusterName}/${taskId}/${randomUUID()}`,
        containerStatus: 'PENDING',
      };
      tasks.set(t.taskArn, t);
      started.push(t);
      const runner: Promise<void> = runTask(t).catch((error: unknown) => {
        stop(t, 'TaskFailedToStart', `InternalError: ${error instanceof Error ? error.message : String(error)}`);
      });
      runners.add(runner);
      void runner.finally(() => runners.delete(runner));
    }
    if (typeof token === 'string') tokens.set(`${clusterArn}\n${token}`, { hash, arns: started.map((t) => t.taskArn) });
    return { tasks: started.map((t) => taskJson(t, true)), failures: [] };
  }

  function describeTasks(body: Body): Body {
    const clusterArn = clusterArnOf(body['cluster']);
    const refs = stringList(body['tasks'], 'tasks');
    if (refs === undefined || refs.length === 0) throw invalid('Tasks cannot be empty.');
    if (refs.length > 100) throw invalid('Tasks cannot contain more than 100 elements.');
    const withTags = (stringList(body['include'], 'include') ?? []).includes('TAGS');
    const found: Body[] = [];
    const failures: Body[] = [];
    for (const ref of refs) {
      const t = findTask(ref, clusterArn);
      if (t === undefined) failures.push({ arn: ref, reason: 'MISSING' });
      else found.push(taskJson(t, withTags));
    }
    return { tasks: found, failures };
  }

  function listTasks(body: Body): Body {
    const clusterArn = clusterArnOf(body['cluster']);
    const desired = body['desiredStatus'] ?? 'RUNNING';
    if (desired !== 'RUNNING' && desired !== 'STOPPED' && desired !== 'PENDING') throw invalid('desiredStatus must be RUNNING, PENDING or STOPPED.');
    const maxResults = typeof body['maxResults'] === 'number' ? body['maxResults'] : 100;
    if (maxResults < 1 || maxResults > 100) throw invalid('maxResults must be between 1 and 100.');
    const family = body['family'];
    const matching = [...tasks.values()]
      .filter((t) => t.clusterArn === clusterArn)
      .filter((t) => (desired === 'STOPPED' ? t.desiredStatus === 'STOPPED' : t.desiredStatus === 'RUNNING'))
      .filter((t) => body['startedBy'] === undefined || t.startedBy === body['startedBy'])
      .filter((t) => family === undefined || t.def.family === family)
      .filter((t) => body['launchType'] === undefined || t.launchType === body['launchType'])
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((t) => t.taskArn);
    let from = 0;
    if (body['nextToken'] !== undefined) {
      from = Number(Buffer.from(String(body['nextToken']), 'base64url').toString('utf8'));
      if (!Number.isInteger(from) || from < 0) throw invalid('Invalid nextToken.');
    }
    const page = matching.slice(from, from + maxResults);
    const next = from + maxResults < matching.length ? Buffer.from(String(from + maxResults)).toString('base64url') : undefined;
    return { taskArns: page, ...(next === undefined ? {} : { nextToken: next }) };
  }

  function stopTaskOp(body: Body): Body {
    const clusterArn = clusterArnOf(body['cluster']);
    const ref = body['task'];
    if (typeof ref !== 'string') throw invalid('Task can not be blank.');
    const t = findTask(ref, clusterArn);
    if (t === undefined) throw invalid('The referenced task was not found.');
    if (t.lastStatus !== 'STOPPED' && t.stopRequest === undefined) {
      t.stopRequest = typeof body['reason'] === 'string' && body['reason'] !== '' ? body['reason'].slice(0, 255) : 'Task stopped by user';
      t.desiredStatus = 'STOPPED';
      t.stoppingAt = Date.now();
      if (t.lastStatus === 'RUNNING') {
        move(t, 'DEACTIVATING');
        // ECS: SIGTERM, then SIGKILL after the container's stopTimeout; the runner sees the exit and stops the task.
        const timeout = t.def.containerDefinitions[0]?.stopTimeout ?? 30;
        void t.container?.stop({ t: timeout }).catch(() => undefined);
        move(t, 'STOPPING');
      } else {
        t.version += 1;
      }
    }
    return { task: taskJson(t, false) };
  }

  // ------------------------------------------------------------------ HTTP

  function takeFault(operation: string): EcsFault | undefined {
    const active = faults.find((f) => f.remaining > 0 && (f.operation === undefined || f.operation === operation));
    if (active === undefined) return undefined;
    active.remaining -= 1;
    faults = faults.filter((f) => f.remaining > 0);
    return active.fault;
  }

  const server = await startAwsJsonServer({
    region,
    secrets: new Map((options.principals ?? []).map((p) => [p.accessKeyId, p.secretAccessKey])),
    takeFault,
    services: [
      {
        targetPrefix: ECS_PREFIX,
        signingName: 'ecs',
        internalErrorType: 'ServerException',
        operations: {
          RegisterTaskDefinition: registerTaskDefinition,
          DescribeTaskDefinition: describeTaskDefinition,
          RunTask: runTaskOp,
          DescribeTasks: describeTasks,
          ListTasks: listTasks,
          StopTask: stopTaskOp,
        },
      },
      { targetPrefix: LOGS_PREFIX, signingName: 'logs', internalErrorType: 'ServiceUnavailableException', operations: { CreateLogGroup: (b) => cloudWatch.createLogGroup(b), GetLogEvents: (b) => cloudWatch.getLogEvents(b) } },
    ],
  });

  return {
    url: server.url,
    region,
    accountId,
    id,
    calls: server.calls,
    injectFault(fault, opts = {}) {
      faults.push({ fault, remaining: opts.count ?? Number.POSITIVE_INFINITY, ...(opts.operation === undefined ? {} : { operation: opts.operation }) });
    },
    injectRunTaskFailure(failure, count = 1) {
      runTaskFailures.push({ ...failure, remaining: count });
    },
    clearFaults() {
      faults = [];
      runTaskFailures = [];
    },
    containerOf(ref) {
      return (tasks.get(ref) ?? [...tasks.values()].find((t) => t.taskId === ref))?.container;
    },
    taskArns() {
      return [...tasks.keys()];
    },
    async close() {
      closed = true;
      await server.close();
      await removeDoubleContainers(docker, id);
      await Promise.allSettled([...runners]);
    },
  };
}
