import type { Static } from 'typebox';
import type { Command } from 'commander';
import { RotationResult, SecretVersionList } from '../../api/apiSchemas.ts';
import { formatFields, formatTable } from '../output/formatTable.ts';
import { action, clientFor, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';

type Version = Static<typeof SecretVersionList>['versions'][number];
type Rotation = Static<typeof RotationResult>['rotation'];

// A `/` in a secret name is part of the name, not of the path: encodeURIComponent sends it as %2F.
const secretPath = (name: string, op: string): string => `/v1/secrets/${encodeURIComponent(name)}/${op}`;

function rotationFields(r: Rotation): string {
  return formatFields([
    ['rotation', r.id], ['secret', `${r.credentials}/${r.name}`], ['state', r.state], ['trigger', r.trigger], ['requester', r.requester],
    ['previous version', r.previousVersion ?? '-'], ['new version', r.newVersion ?? '-'], ['started', r.startedAt], ['finished', r.finishedAt ?? '-'],
    ['workers', r.workers.length === 0 ? '-' : r.workers.join(', ')],
    ...(r.latencyMs === undefined ? [] : [['latency', `${Math.round(r.latencyMs)} ms`] as const]),
    ...(r.error === undefined ? [] : [['error', `[${r.error.code}] ${r.error.message}`] as const]),
  ]);
}

/** `wm secrets versions|rotate|rollback`: secret metadata and rotation; no value ever crosses the API. */
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
      ], list.versions));
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
        return result.rotation.state === 'failed' ? 1 : 0;
      }));
  }

  return secrets;
}
