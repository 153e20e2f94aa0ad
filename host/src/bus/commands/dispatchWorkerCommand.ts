import Type, { type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { RuntimeSpec, WorkerManagerError, type RuntimeSpec as RuntimeSpecType } from '@worker-manager/plugin-sdk';
import type { WorkerService } from '../../workers/WorkerService.ts';
import type { CommandExecutor } from '../EventBus.ts';
import { workerIdForKey, type WorkerCommand, type WorkerOperation } from './workerCommand.ts';

const Id = Type.String({ minLength: 1 });
const PARAMS: Record<WorkerOperation, TSchema> = {
  create: Type.Object({ provider: Type.Optional(Type.String()), workerId: Type.Optional(Type.String()), spec: RuntimeSpec }),
  terminate: Type.Object({ workerId: Id, gracePeriodMs: Type.Optional(Type.Integer({ minimum: 0 })) }),
  status: Type.Object({ workerId: Id }),
  list: Type.Object({ provider: Type.Optional(Type.String()), labels: Type.Optional(Type.Record(Type.String(), Type.String())) }),
  exec: Type.Object({ workerId: Id, command: Type.Array(Type.String(), { minItems: 1 }), timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })) }),
  pause: Type.Object({ workerId: Id }),
  resume: Type.Object({ workerId: Id }),
  restart: Type.Object({ workerId: Id }),
  capacity: Type.Object({ provider: Type.Optional(Type.String()) }),
};
type Validator = { Check(value: unknown): boolean; Errors(value: unknown): Iterable<{ instancePath: string; message: string }> };
const checks = Object.fromEntries(Object.entries(PARAMS).map(([op, schema]) => [op, Compile(schema)])) as unknown as Record<WorkerOperation, Validator>;

/** Params of every operation, as checked by PARAMS. */
type Params = { provider?: string; workerId: string; spec: RuntimeSpecType; gracePeriodMs?: number; labels?: Record<string, string>; command: string[]; timeoutMs?: number };

/** Operations whose repetition after an unknown outcome would do something twice. */
export const NOT_REPEATABLE: ReadonlySet<WorkerOperation> = new Set(['exec', 'restart']);

/** Runs one command against the worker service; throws WorkerManagerError like the API does. */
export async function dispatchWorkerCommand(workers: WorkerService, command: WorkerCommand): Promise<unknown> {
  const check = checks[command.operation];
  if (!check.Check(command.params)) {
    const first = [...check.Errors(command.params)][0];
    throw new WorkerManagerError('WM_ERR_VALIDATION', `invalid params for ${command.operation}: ${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim(), { details: { operation: command.operation } });
  }
  const p = command.params as unknown as Params;
  const ctx = { ...(command.correlationId === undefined ? {} : { correlationId: command.correlationId }), ...(command.tenant === undefined ? {} : { tenant: command.tenant }) };
  switch (command.operation) {
    case 'create':
      return workers.createWorker({
        ...(p.provider === undefined ? {} : { provider: p.provider }),
        workerId: p.workerId ?? workerIdForKey(command.idempotencyKey),
        spec: p.spec,
        idempotencyKey: command.idempotencyKey,
        ...ctx,
      });
    case 'terminate':
      return workers.terminateWorker(p.workerId, { ...(p.gracePeriodMs === undefined ? {} : { gracePeriodMs: p.gracePeriodMs }), ...ctx });
    case 'status':
      return workers.getStatus(p.workerId, ctx);
    case 'list':
      return workers.listWorkers({ ...(p.provider === undefined ? {} : { provider: p.provider }), ...(p.labels === undefined ? {} : { labels: p.labels }) }, ctx);
    case 'exec':
      return workers.executeCommand(p.workerId, p.command, p.timeoutMs, ctx);
    case 'pause':
      return workers.pauseWorker(p.workerId, ctx);
    case 'resume':
      return workers.resumeWorker(p.workerId, ctx);
    case 'restart':
      return workers.restartWorker(p.workerId, ctx);
    case 'capacity':
      return workers.getCapacity(p.provider, ctx);
  }
}

/**
 * A create whose first executor died: the worker may exist already (its id comes from the key). Returns it if so, so
 * that the command is not executed twice; otherwise runs the create.
 */
export async function recoverCreate(workers: WorkerService, command: WorkerCommand): Promise<unknown> {
  const p = command.params as { provider?: string; workerId?: string };
  const workerId = p.workerId ?? workerIdForKey(command.idempotencyKey);
  const existing = (await workers.listWorkers(p.provider === undefined ? {} : { provider: p.provider })).find((w) => w.worker.workerId === workerId);
  return existing ?? dispatchWorkerCommand(workers, command);
}

/** The executor the host gives the bus: commands run on the worker service; recovery per {@link CommandExecutor}. */
export function workerCommandExecutor(workers: WorkerService): CommandExecutor {
  return {
    run: (command) => dispatchWorkerCommand(workers, command),
    recover: async (command) => {
      if (command.operation === 'create') return recoverCreate(workers, command);
      if (NOT_REPEATABLE.has(command.operation)) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `the replica running ${command.operation} (key ${command.idempotencyKey}) stopped before it finished; its outcome is unknown and it is not repeated`, {
          details: { operation: command.operation, idempotencyKey: command.idempotencyKey },
        });
      }
      // terminate, status, list, pause, resume and capacity give the same end state when repeated.
      return dispatchWorkerCommand(workers, command);
    },
  };
}
