import type { Static } from 'typebox';
import type { Command } from 'commander';
import { RotationList, RotationResult, SecretVersionList } from '../../api/apiSchemas.ts';
import { formatFields, formatTable } from '../output/formatTable.ts';
import { action, clientFor, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';

type Version = Static<typeof SecretVersionList>['versions'][number];
type Rotation = Static<typeof RotationResult>['rotation'];

// A `/` in a secret name is part of the name, not of the path: encodeURIComponent sends it as %2F.
const secretPath = (name: string, op: string): string => `/v1/secrets/${encodeURIComponent(name)}/${op}`;

function rotationFields(r: Rotation): string {
  return formatFields([
    ['rotation', r.id], ['secret', `${r.credentials}/${r.name}`], ['state', r.state], ['step', r.step ?? '-'], ['trigger', r.trigger], ['requester', r.requester],
    ['previous version', r.previousVersion ?? '-'], ['new version', r.newVersion ?? '-'], ['started', r.startedAt], ['finished', r.finishedAt ?? '-'],
    ['workers', r.workers.length === 0 ? '-' : r.workers.join(', ')],
    ...(r.latencyMs === undefined ? [] : [['latency', `${Math.round(r.latencyMs)} ms`] as const]),
    ...(r.rollbackId === undefined ? [] : [['rolled back by', r.rollbackId] as const]),
    ...(r.rollbackOf === undefined ? [] : [['rolls back', r.rollbackOf] as const]),
    ...(r.retry === undefined ? [] : [['attempts', retryText(r)] as const]),
    ...(r.error === undefined ? [] : [['error', `[${r.error.code}] ${r.error.message}`] as const]),
  ]);
}

/** `3 failed, next at <time>` while a step is retried; `3 failed, then succeeded` once it went through. */
function retryText(r: Rotation): string {
  if (r.retry === undefined) return '-';
  return `${r.retry.attempts} failed, ${r.retry.nextAttemptAt === undefined ? 'then succeeded' : `next at ${r.retry.nextAttemptAt}`}`;
}

/** Still retrying a step, failed or cancelled: the command exits 1. */
const unsettled = (r: Rotation): boolean => r.state === 'failed' || r.state === 'cancelled' || r.retry?.nextAttemptAt !== undefined;

/** `wm secrets versions|rotations|rotate|rollback`: secret metadata and rotation; no value ever crosses the API. */
export function registerSecretsCommand(program: Command): Command {
  const secrets = program.command('secrets').description('secret versions and rotation (metadata only, never values)');

  withApiOptions(secrets.command('versions'))
    .description('list the versions of a secret')
    .argument('<name>', 'secret name')
    .option('--credentials <instance>', 'credentials instance (default: the host\'s default)')
    .action(action(async (name: string, opts: ApiOptions & { credentials?: string }) => {
      const list = await (await clientFor(opts)).request('GET', secretPath(name, 'versions'), { query: { credentials: opts.credentials }, schema: SecretVersionList });
      if (opts.json === true) return printJson(list);
      out(formatTable<Version>([
        { header: 'version', value: (v) => v.version },
        { header: 'status', value: (v) => v.status },
        { header: 'stages', value: (v) => v.stages.join(',') },
        { header: 'created', value: (v) => v.createdAt },
        { header: 'expires', value: (v) => v.expiresAt ?? '-' },
        { header: 'failed in', value: (v) => (v.failure === undefined ? '-' : `${v.failure.rotationId} (${v.failure.step})`) },
      ], list.versions));
    }));

  withApiOptions(secrets.command('rotations'))
    .description('list the rotation and rollback records of a secret, with the retry state of an unfinished rollback')
    .argument('<name>', 'secret name')
    .option('--credentials <instance>', 'credentials instance (default: the host\'s default)')
    .action(action(async (name: string, opts: ApiOptions & { credentials?: string }) => {
      const list = await (await clientFor(opts)).request('GET', secretPath(name, 'rotations'), { query: { credentials: opts.credentials }, schema: RotationList });
      if (opts.json === true) return printJson(list);
      out(formatTable<Rotation>([
        { header: 'id', value: (r) => r.id },
        { header: 'operation', value: (r) => r.operation },
        { header: 'state', value: (r) => r.state },
        { header: 'step', value: (r) => r.step ?? '-' },
        { header: 'versions', value: (r) => `${r.previousVersion ?? '-'} -> ${r.newVersion ?? '-'}` },
        { header: 'started', value: (r) => r.startedAt },
        { header: 'attempts', value: (r) => retryText(r) },
        { header: 'error', value: (r) => (r.error === undefined ? '-' : r.error.code) },
      ], list.rotations));
    }));

  for (const op of ['rotate', 'rollback'] as const) {
    withApiOptions(secrets.command(op))
      .description(op === 'rotate' ? 'rotate a secret now and refresh the workers that use it' : 'roll a secret back to its previous version')
      .argument('<name>', 'secret name')
      .option('--credentials <instance>', 'credentials instance (default: the host\'s default)')
      .action(action(async (name: string, opts: ApiOptions & { credentials?: string }) => {
        const result = await (await clientFor(opts)).request('POST', secretPath(name, op), {
          body: opts.credentials === undefined ? {} : { credentials: opts.credentials },
          schema: RotationResult,
          // A rotation refreshes or restarts every consumer; it may take a while on a busy host.
          timeoutMs: 300_000,
        });
        if (opts.json === true) return printJson(result);
        out(rotationFields(result.rotation));
        return unsettled(result.rotation) ? 1 : 0;
      }));
  }

  return secrets;
}
