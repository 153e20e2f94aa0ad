import type { ResourceQuota } from '@worker-manager/plugin-sdk';
import type { AccessGuard } from '../../security/authn/AccessGuard.ts';
import { authFailure } from '../../security/authn/authFailure.ts';
import type { Action, AuthzResource } from '../../security/authz/Authorizer.ts';
import type { Principal } from '../../security/Principal.ts';
import type { CommandExecutor } from '../EventBus.ts';
import { workerIdForKey, type WorkerCommand, type WorkerOperation } from './workerCommand.ts';

/** The action each command operation performs: the same ones the matching API routes declare. */
export const COMMAND_ACTIONS: Readonly<Record<WorkerOperation, Action>> = {
  create: 'worker:create',
  terminate: 'worker:terminate',
  status: 'worker:read',
  list: 'worker:read',
  exec: 'worker:exec',
  pause: 'worker:pause',
  resume: 'worker:resume',
  restart: 'worker:restart',
  capacity: 'plugin:read',
};

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** What a command targets, read defensively from its (not yet validated) params. */
export function commandResource(command: WorkerCommand, principal: Principal): AuthzResource {
  const p = command.params;
  const provider = str(p['provider']);
  switch (command.operation) {
    case 'create':
      return {
        type: 'Worker', id: str(p['workerId']) ?? workerIdForKey(command.idempotencyKey), ...(provider === undefined ? {} : { provider }),
        ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }), owner: principal.id,
      };
    case 'list':
      return { type: 'Worker', id: '*', ...(provider === undefined ? {} : { provider }) };
    case 'capacity':
      return { type: 'Provider', id: provider ?? '*' };
    default:
      return { type: 'Worker', id: str(p['workerId']) ?? '*' };
  }
}

/**
 * Wraps the worker command executor with the API's checks, through the same {@link AccessGuard}: the command's
 * `auth.token` is authenticated like a bearer header (or, without one, the host service identity is used when
 * configured), the operation is authorized against its resource and audited. The tenant a command acts for is the
 * principal's when it has one, whatever the envelope says. `admit` runs before the bus replays or records anything;
 * `run` and `recover` admit by themselves when the bus did not (the memory path), never twice for one command.
 */
export function guardedCommandExecutor(inner: CommandExecutor, deps: { guard: AccessGuard; serviceIdentity?: Principal | undefined }): CommandExecutor {
  const admitted = new WeakMap<WorkerCommand, WorkerCommand>();

  const admit = async (command: WorkerCommand): Promise<WorkerCommand> => {
    const known = admitted.get(command);
    if (known !== undefined) return known;
    const token = command.auth?.token;
    let principal: Principal;
    if (token !== undefined) principal = await deps.guard.authenticate(`Bearer ${token}`, { correlationId: command.correlationId, channel: 'bus' });
    else if (deps.serviceIdentity !== undefined) principal = deps.serviceIdentity;
    else throw authFailure('missing', 'the command carries no auth.token and the host runs no service identity for commands');
    const resources = command.operation === 'create' ? (command.params['spec'] as { resources?: ResourceQuota } | undefined)?.resources : undefined;
    await deps.guard.check({
      principal,
      action: COMMAND_ACTIONS[command.operation],
      resource: commandResource(command, principal),
      requested: typeof resources === 'object' && resources !== null ? resources : undefined,
      correlationId: command.correlationId,
      channel: 'bus',
    });
    // The token is dropped once used: nothing downstream (stored records, logs, plugin calls) needs it.
    const { auth: _auth, ...rest } = command;
    const checked: WorkerCommand = principal.tenant === undefined ? rest : { ...rest, tenant: principal.tenant };
    admitted.set(command, checked);
    return checked;
  };

  return {
    admit: async (command) => {
      await admit(command);
    },
    run: async (command) => inner.run(await admit(command)),
    recover: async (command) => inner.recover(await admit(command)),
  };
}
