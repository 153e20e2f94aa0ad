import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import {
  DescribeTaskDefinitionCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  RunTaskCommand,
  StopTaskCommand,
  type ECSClient,
  type Failure as EcsFailure,
  type Task,
} from '@aws-sdk/client-ecs';
import {
  isFinalState,
  WorkerManagerError,
  type CallContext,
  type CapacityInfo,
  type LogChunk,
  type LogOptions,
  type PluginContext,
  type ProviderHandlers,
  type RuntimeSpec,
  type Worker,
  type WorkerState,
} from '@worker-manager/plugin-sdk';
import { sleep, type AwsCaller } from './AwsCaller.ts';
import type { ResolvedConfig } from './config.ts';
import { readLogs } from './readLogs.ts';
import { RunAttempts } from './RunAttempts.ts';
import { runTaskFailure } from './runTaskFailure.ts';
import { checkSupported, runTaskInput, specHash, startedByOf, TAG_SPEC_HASH, TAG_WORKER_ID, taskDefinitionFor } from './taskPlan.ts';
import { isStopped, stateOfTask, STOP_REASON_PREFIX } from './taskState.ts';

/** DescribeTasks takes at most 100 tasks per call, ListTasks answers at most 100 per page. */
const PAGE = 100;

const notFound = (workerId: string): WorkerManagerError => new WorkerManagerError('WM_ERR_NOT_FOUND', `worker '${workerId}' does not exist`, { details: { workerId } });

const tagsOf = (task: Task): Record<string, string> => Object.fromEntries((task.tags ?? []).flatMap((t) => (t.key === undefined ? [] : [[t.key, t.value ?? '']])));

/** The id at the end of a task ARN (`arn:aws:ecs:<region>:<account>:task/<cluster>/<id>`). */
const taskIdOf = (arn: string): string => arn.slice(arn.lastIndexOf('/') + 1);

/**
 * The handlers of one plugin thread. ECS is the truth: each worker is one task, started with the instance's
 * `startedBy` and tagged with the worker id, the owner labels and the spec hash. Nothing is kept in memory but a cache
 * of worker id to task ARN (an ARN never changes) and of the task definitions known to exist.
 */
export class EcsProvider {
  readonly #ctx: PluginContext<unknown>;
  readonly #config: ResolvedConfig;
  readonly #ecs: ECSClient;
  readonly #logs: CloudWatchLogsClient;
  readonly #aws: AwsCaller;
  readonly #startedBy: string;
  readonly #arns = new Map<string, string>();
  readonly #families = new Set<string>();
  readonly #attempts: RunAttempts;

  constructor(ctx: PluginContext<unknown>, config: ResolvedConfig, ecs: ECSClient, logs: CloudWatchLogsClient, aws: AwsCaller) {
    this.#ctx = ctx;
    this.#config = config;
    this.#ecs = ecs;
    this.#logs = logs;
    this.#aws = aws;
    this.#startedBy = startedByOf(ctx.owner);
    this.#attempts = new RunAttempts(ctx.stateDir);
  }

  handlers(): ProviderHandlers {
    return {
      createWorker: (p, call) => this.createWorker(p.workerId, p.spec, (p.secrets?.length ?? 0) > 0, call),
      terminateWorker: (p, call) => this.terminateWorker(p.workerId, call),
      getWorkerStatus: async (p, call) => this.#state(await this.#require(p.workerId, call.signal)),
      listWorkers: (p, call) => this.listWorkers(p.labels ?? {}, call),
      getLogs: (p, call) => this.getLogs(p.workerId, p.options ?? {}, call),
      getCapacity: (_p, call) => this.getCapacity(call),
    };
  }

  #state(task: Task): WorkerState {
    return stateOfTask(task, this.#config.containerName);
  }

  #toWorker(task: Task): Worker {
    const labels = tagsOf(task);
    delete labels[TAG_SPEC_HASH];
    return {
      workerId: labels[TAG_WORKER_ID] ?? '',
      state: this.#state(task),
      labels,
      createdAt: (task.createdAt ?? new Date(0)).toISOString(),
      ...(task.taskArn === undefined ? {} : { providerRef: task.taskArn }),
    };
  }

  // ---------------------------------------------------------------- reading tasks

  async #describe(arns: readonly string[], signal: AbortSignal, workerId?: string): Promise<Task[]> {
    const out: Task[] = [];
    for (let i = 0; i < arns.length; i += PAGE) {
      const r = await this.#aws.send(
        (abortSignal) => this.#ecs.send(new DescribeTasksCommand({ cluster: this.#config.cluster, tasks: arns.slice(i, i + PAGE), include: ['TAGS'] }), { abortSignal }),
        { operation: 'ecs:DescribeTasks', ...(workerId === undefined ? {} : { workerId }) },
        signal,
      );
      out.push(...(r.tasks ?? []));
    }
    return out;
  }

  /** Every task this instance started that ECS still shows (stopped tasks stay visible for about an hour). */
  async #listTasks(signal: AbortSignal): Promise<Task[]> {
    const arns: string[] = [];
    for (const desiredStatus of ['RUNNING', 'STOPPED'] as const) {
      let nextToken: string | undefined;
      do {
        const token = nextToken;
        const r = await this.#aws.send(
          (abortSignal) =>
            this.#ecs.send(
              new ListTasksCommand({ cluster: this.#config.cluster, startedBy: this.#startedBy, desiredStatus, maxResults: PAGE, ...(token === undefined ? {} : { nextToken: token }) }),
              { abortSignal },
            ),
          { operation: 'ecs:ListTasks' },
          signal,
        );
        arns.push(...(r.taskArns ?? []));
        nextToken = r.nextToken;
      } while (nextToken !== undefined);
    }
    const tasks = await this.#describe([...new Set(arns)], signal);
    // ListTasks by startedBy is the ownership filter; the owner tags confirm it (a hash collision, a foreign task).
    const owner = this.#ctx.owner;
    return tasks.filter((t) => {
      const tags = tagsOf(t);
      return tags['worker-manager/host'] === owner['worker-manager/host'] && tags['worker-manager/instance'] === owner['worker-manager/instance'] && tags[TAG_WORKER_ID] !== undefined;
    });
  }

  /** The worker's task: through the cached ARN, else found by listing (another thread, or a restart, made it). */
  async #find(workerId: string, signal: AbortSignal): Promise<Task | undefined> {
    const arn = this.#arns.get(workerId);
    if (arn !== undefined) {
      const [task] = await this.#describe([arn], signal, workerId);
      if (task !== undefined) return task;
      this.#arns.delete(workerId);
    }
    const mine = (await this.#listTasks(signal)).filter((t) => tagsOf(t)[TAG_WORKER_ID] === workerId);
    // One task per worker id (the clientToken sees to it); should there be more, the live one is the worker.
    mine.sort((a, b) => Number(isStopped(a)) - Number(isStopped(b)) || (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0));
    const task = mine[0];
    if (task?.taskArn !== undefined) this.#arns.set(workerId, task.taskArn);
    return task;
  }

  async #require(workerId: string, signal: AbortSignal): Promise<Task> {
    const task = await this.#find(workerId, signal);
    if (task === undefined) throw notFound(workerId);
    return task;
  }

  // ---------------------------------------------------------------- create

  /** The task definition to run: the configured one, or the family registered for this spec (registered if new). */
  async #taskDefinition(workerId: string, spec: RuntimeSpec, signal: AbortSignal): Promise<string> {
    if (this.#config.taskDefinition !== undefined) {
      if (spec.image !== undefined) {
        this.#ctx.logger.debug('aws-ecs provider: spec.image ignored, the configured task definition names the image', { workerId });
      }
      return this.#config.taskDefinition;
    }
    const region = await this.#ecs.config.region();
    const input = taskDefinitionFor(spec, this.#config, region, this.#ctx.owner);
    const family = input.family!;
    if (this.#families.has(family)) return family;
    const exists = await this.#aws
      .send((abortSignal) => this.#ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: family }), { abortSignal }), { operation: 'ecs:DescribeTaskDefinition', workerId }, signal)
      .then(
        (r) => r.taskDefinition?.status === 'ACTIVE',
        (error: unknown) => {
          // An unknown family is a ClientException ("Unable to describe task definition."): register it.
          if ((error as { details?: { awsError?: string } }).details?.awsError === 'ClientException') return false;
          throw error;
        },
      );
    if (!exists) {
      await this.#aws.send((abortSignal) => this.#ecs.send(new RegisterTaskDefinitionCommand(input), { abortSignal }), { operation: 'ecs:RegisterTaskDefinition', workerId }, signal);
      this.#ctx.logger.info('aws-ecs provider: task definition registered', { family });
    }
    this.#families.add(family);
    // The family, not family:revision: two threads registering it at once make two equal revisions, and RunTask must
    // get the same parameters from both for its clientToken to make one task.
    return family;
  }

  async createWorker(workerId: string, spec: RuntimeSpec, hasSecrets: boolean, call: CallContext): Promise<Worker> {
    checkSupported(workerId, spec);
    if (hasSecrets) {
      throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `the aws-ecs provider takes no secret mounts (worker '${workerId}'): use ECS secrets in a configured task definition`, {
        details: { workerId },
      });
    }
    const existing = await this.#find(workerId, call.signal);
    if (existing !== undefined) return this.#same(workerId, spec, existing);
    const taskDefinition = await this.#taskDefinition(workerId, spec, call.signal);
    const failedAttempts = await this.#attempts.failed(workerId);
    const input = runTaskInput({ workerId, spec, config: this.#config, taskDefinition, startedBy: this.#startedBy, owner: this.#ctx.owner, failedAttempts });
    const r = await this.#aws.send((abortSignal) => this.#ecs.send(new RunTaskCommand(input), { abortSignal }), { operation: 'ecs:RunTask', workerId }, call.signal).catch((error: unknown) => {
      if ((error as { code?: string }).code === 'WM_ERR_ALREADY_EXISTS') throw alreadyExists(workerId);
      throw error;
    });
    const task = r.tasks?.[0];
    if (task?.taskArn === undefined) {
      await this.#attempts.recordFailure(workerId, failedAttempts);
      throw runTaskFailure(workerId, r.failures ?? ([] as EcsFailure[]));
    }
    this.#arns.set(workerId, task.taskArn);
    if (failedAttempts > 0) await this.#attempts.clear(workerId);
    // A concurrent create of the same worker got this same task (same clientToken): its spec hash is ours.
    if (tagsOf(task)[TAG_SPEC_HASH] === undefined) task.tags = input.tags;
    this.#ctx.logger.info('aws-ecs provider: task started', { workerId, taskId: taskIdOf(task.taskArn) });
    return this.#same(workerId, spec, task);
  }

  #same(workerId: string, spec: RuntimeSpec, task: Task): Worker {
    if (tagsOf(task)[TAG_SPEC_HASH] !== specHash(spec)) throw alreadyExists(workerId);
    return this.#toWorker(task);
  }

  // ---------------------------------------------------------------- terminate, list, capacity

  /**
   * StopTask (ECS sends SIGTERM, then SIGKILL after the container's stopTimeout: the grace period is the task
   * definition's, not the call's), then waits for STOPPED up to terminateWaitMs and answers the state reached.
   */
  async terminateWorker(workerId: string, call: CallContext): Promise<{ workerId: string; state: WorkerState; alreadyGone: boolean }> {
    const task = await this.#find(workerId, call.signal);
    if (task?.taskArn === undefined) return { workerId, state: { phase: 'Terminated' }, alreadyGone: true };
    if (isStopped(task)) return { workerId, state: this.#state(task), alreadyGone: true };
    const arn = task.taskArn;
    const reason = `${STOP_REASON_PREFIX} (instance ${this.#ctx.instance})`;
    await this.#aws.send((abortSignal) => this.#ecs.send(new StopTaskCommand({ cluster: this.#config.cluster, task: arn, reason }), { abortSignal }), { operation: 'ecs:StopTask', workerId }, call.signal);
    const deadline = Date.now() + this.#config.terminateWaitMs;
    let last = task;
    while (!isStopped(last) && Date.now() < deadline && !call.signal.aborted) {
      await sleep(Math.min(this.#config.pollIntervalMs, 250), call.signal);
      last = (await this.#describe([arn], call.signal, workerId))[0] ?? last;
    }
    const state = isStopped(last) ? this.#state(last) : ({ phase: 'Terminating' } as const);
    this.#ctx.logger.info('aws-ecs provider: task stopped', { workerId, taskId: taskIdOf(arn), phase: state.phase });
    return { workerId, state, alreadyGone: false };
  }

  async listWorkers(labels: Record<string, string>, call: CallContext): Promise<Worker[]> {
    const tasks = await this.#listTasks(call.signal);
    const wanted = Object.entries(labels);
    const out: Worker[] = [];
    for (const task of tasks) {
      const tags = tagsOf(task);
      if (!wanted.every(([k, v]) => tags[k] === v)) continue;
      if (task.taskArn !== undefined) this.#arns.set(tags[TAG_WORKER_ID]!, task.taskArn);
      out.push(this.#toWorker(task));
    }
    return out;
  }

  async getCapacity(call: CallContext): Promise<CapacityInfo> {
    const active = (await this.#listTasks(call.signal)).filter((t) => !isFinalState(this.#state(t)));
    const total = { cpuMillicores: this.#config.capacity.cpuMillicores, memoryMiB: this.#config.capacity.memoryMiB, gpu: 0, storageMiB: 0 };
    const used = { cpuMillicores: 0, memoryMiB: 0, gpu: 0, storageMiB: 0 };
    for (const t of active) {
      used.cpuMillicores += Math.round((Number(t.cpu ?? '0') * 1000) / 1024);
      used.memoryMiB += Number(t.memory ?? '0');
    }
    return {
      total,
      used,
      available: {
        cpuMillicores: Math.max(0, total.cpuMillicores - used.cpuMillicores),
        memoryMiB: Math.max(0, total.memoryMiB - used.memoryMiB),
        gpu: 0,
        storageMiB: 0,
      },
      activeWorkers: active.length,
      maxWorkers: Math.max(this.#config.capacity.maxWorkers, active.length),
    };
  }

  // ---------------------------------------------------------------- logs

  async getLogs(workerId: string, options: LogOptions, call: CallContext): Promise<AsyncIterable<LogChunk>> {
    const task = await this.#require(workerId, call.signal);
    const arn = task.taskArn!;
    const container = task.containers?.find((c) => c.name === this.#config.containerName)?.name ?? task.containers?.[0]?.name ?? this.#config.containerName;
    return readLogs(
      {
        logs: this.#logs,
        aws: this.#aws,
        workerId,
        logGroup: this.#config.logGroup,
        logStream: `${this.#config.logStreamPrefix}/${container}/${taskIdOf(arn)}`,
        pollIntervalMs: this.#config.pollIntervalMs,
        isStopped: async (signal) => {
          const [now] = await this.#describe([arn], signal, workerId);
          return now === undefined || isStopped(now);
        },
      },
      options,
      call.signal,
    );
  }
}

function alreadyExists(workerId: string): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with a different spec`, { details: { workerId } });
}
