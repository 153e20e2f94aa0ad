import Type from 'typebox';
import type { CapabilityName } from './capabilities.ts';
import { CommandLine, Labels, WorkerId } from './common.ts';
import { CapacityInfo } from './capacity.ts';
import { ExecutionResult } from './execution.ts';
import { MAX_TIMER_MS } from './limits.ts';
import { LogChunk, LogOptions } from './logs.ts';
import { call, stream, type Contract } from './operation.ts';
import { RuntimeSpec } from './runtimeSpec.ts';
import { SecretMount } from './secretRef.ts';
import { Worker } from './worker.ts';
import { WorkerState } from './workerState.ts';

const ByWorker = Type.Object({ workerId: WorkerId }, { additionalProperties: false });

/**
 * The WorkerProvider contract. Every provider plugin implements the `worker.lifecycle`
 * operations; the others are optional capabilities. Workers are identified by the id the host gives them, and a
 * provider labels every resource it creates with the owner labels of its plugin context.
 */
export const WorkerProviderContract = {
  name: 'worker-provider',
  /** 2.0.0: createWorker is asynchronous (returns on acceptance); a 1.x provider is refused at negotiation. */
  version: '2.0.0',
  operations: {
    /**
     * Asks the infrastructure for a worker and returns as soon as it has accepted it: do not wait for an image pull,
     * for scheduling or for the worker to run. The returned state is `Creating`, `Starting` (with a `pendingReason`
     * such as `ImagePull` or `Unschedulable` when known), or whatever the worker already reached (`Running`, or even
     * `Terminated` for a job that finished at once). Later states arrive as WorkerEvents (providers that declare
     * `worker.events`) or through `getWorkerStatus`, which the host polls otherwise. A failure after acceptance is a
     * `Failed` state with its reason (`ImagePullFailed`, `Unschedulable` ...), not an error of this call. Repeating it
     * with the same workerId returns that worker, in its current state.
     */
    createWorker: call({
      params: Type.Object(
        {
          workerId: WorkerId,
          spec: RuntimeSpec,
          /** Secret material resolved by the host for this worker only. Never log, label or persist it. */
          secrets: Type.Optional(Type.Array(SecretMount)),
        },
        { additionalProperties: false },
      ),
      result: Worker,
      capability: 'worker.lifecycle',
      idempotent: true,
    }),
    /** Stops the worker (graceful, then forced) and removes what it used. Terminating a gone worker succeeds. */
    terminateWorker: call({
      params: Type.Object({ workerId: WorkerId, gracePeriodMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_TIMER_MS })) }, { additionalProperties: false }),
      result: Type.Object({ workerId: WorkerId, state: WorkerState, alreadyGone: Type.Boolean() }, { additionalProperties: false }),
      capability: 'worker.lifecycle',
      idempotent: true,
    }),
    /** Current state; `Unknown` when the provider has no telemetry. Unknown worker: `WM_ERR_NOT_FOUND`. */
    getWorkerStatus: call({ params: ByWorker, result: WorkerState, capability: 'worker.lifecycle', idempotent: true }),
    /** Workers this instance owns (found through ownership labels), optionally filtered by labels. */
    listWorkers: call({
      params: Type.Object({ labels: Type.Optional(Labels) }, { additionalProperties: false }),
      result: Type.Array(Worker),
      capability: 'worker.lifecycle',
      idempotent: true,
    }),
    /** The worker's output as a stream of chunks; with `follow` it stays open while the worker runs. */
    getLogs: stream({
      params: Type.Object({ workerId: WorkerId, options: Type.Optional(LogOptions) }, { additionalProperties: false }),
      item: LogChunk,
      capability: 'worker.logs',
      idempotent: true,
    }),
    /** Opens a local endpoint (`host:port`) that reaches `remotePort` of the worker. */
    portForward: call({
      params: Type.Object(
        { workerId: WorkerId, remotePort: Type.Integer({ minimum: 1, maximum: 65535 }), localPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })) },
        { additionalProperties: false },
      ),
      result: Type.Object({ endpoint: Type.String() }, { additionalProperties: false }),
      capability: 'worker.portForward',
      idempotent: true,
    }),
    /** Total, used and available resources of this instance. */
    getCapacity: call({ params: Type.Object({}, { additionalProperties: false }), result: CapacityInfo, capability: 'worker.capacity', idempotent: true }),
    /** Runs a command in the worker's environment and returns its exit code and output. */
    executeCommand: call({
      params: Type.Object(
        { workerId: WorkerId, command: CommandLine, timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMER_MS })) },
        { additionalProperties: false },
      ),
      result: ExecutionResult,
      capability: 'worker.exec',
      idempotent: false,
    }),
    /**
     * Stops and starts the worker again with the same spec. With `secrets`, the worker starts on that fresh material
     * instead of what it had: env mounts become its new environment, file/volume mounts replace its files. This is how
     * an env-mounted secret reaches a worker after a rotation; without it, a provider that cannot recover a worker's
     * env secrets (they are never stored) refuses with `WM_ERR_CONFLICT`.
     */
    restartWorker: call({
      params: Type.Object(
        {
          workerId: WorkerId,
          /** Fresh secret material for this worker only (its mounts, new values). Never log, label or persist it. */
          secrets: Type.Optional(Type.Array(SecretMount)),
        },
        { additionalProperties: false },
      ),
      result: Worker,
      capability: 'worker.restart',
      idempotent: false,
    }),
    /**
     * Delivers new values of the worker's secrets while it runs. File and volume mounts are replaced atomically (a
     * temp file in the same folder, fsync, rename), so a reader sees the old or the new content, never a mix or a
     * missing file; env mounts are ignored (a process environment cannot change: use `restartWorker` with `secrets`)
     * and not counted in `updated`. Then `signal`, if given (e.g. `SIGHUP`), is sent to the worker's main process so
     * it reloads. Unknown worker: `WM_ERR_NOT_FOUND`; a worker that has ended: `WM_ERR_CONFLICT`.
     */
    refreshSecrets: call({
      params: Type.Object(
        {
          workerId: WorkerId,
          /** New material for mounts of this worker only. Never log, label or persist it. */
          secrets: Type.Array(SecretMount),
          /** Signal name sent to the worker's main process after the files are replaced. */
          signal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$' })),
        },
        { additionalProperties: false },
      ),
      result: Type.Object({ workerId: WorkerId, updated: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
      capability: 'worker.secrets.refresh',
      idempotent: false,
    }),
    /** Freezes the worker; pausing a paused worker succeeds. */
    pauseWorker: call({ params: ByWorker, result: WorkerState, capability: 'worker.pause', idempotent: true }),
    /** Thaws a paused worker; resuming a running worker succeeds. */
    resumeWorker: call({ params: ByWorker, result: WorkerState, capability: 'worker.pause', idempotent: true }),
  },
} as const satisfies Contract;

/** The WorkerProvider contract type. */
export type WorkerProviderContract = typeof WorkerProviderContract;

/**
 * The capabilities a request needs beyond the operation itself: a spec with a GPU needs `worker.resources.gpu`,
 * a followed log needs `worker.logs.follow`. The host checks these before routing, so a provider is never asked for
 * something it did not declare.
 */
export function capabilitiesForSpec(spec: RuntimeSpec, secrets: readonly SecretMount[] = []): CapabilityName[] {
  const out = new Set<CapabilityName>();
  if (spec.image !== undefined) out.add('worker.image');
  if (spec.resources?.memoryMiB !== undefined) out.add('worker.resources.memory');
  if (spec.resources?.cpuMillicores !== undefined) out.add('worker.resources.cpu');
  if ((spec.resources?.gpu ?? 0) > 0) out.add('worker.resources.gpu');
  if ((spec.ports?.length ?? 0) > 0) out.add('worker.ports');
  if ((spec.volumes?.length ?? 0) > 0) out.add('worker.volumes');
  const isolation = spec.network?.isolation;
  if (isolation === 'Strict' || isolation === 'Complete') out.add('worker.network.isolation');
  if (spec.healthCheck !== undefined) out.add('worker.healthCheck');
  for (const ref of spec.secretRefs ?? []) out.add(ref.mount === 'env' ? 'worker.secrets.env' : 'worker.secrets.file');
  for (const m of secrets) out.add(m.strategy === 'env' ? 'worker.secrets.env' : 'worker.secrets.file');
  return [...out];
}
