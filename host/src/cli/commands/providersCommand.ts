import type { Static } from 'typebox';
import type { Command } from 'commander';
import { ProviderList } from '../../api/apiSchemas.ts';
import { formatTable } from '../output/formatTable.ts';
import { action, clientFor, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';

type Provider = Static<typeof ProviderList>['providers'][number];

const capabilityList = (caps: Record<string, string>): string => Object.entries(caps).map(([c, v]) => `${c}@${v}`).join(',');

/** `wm providers list`: provider instances with their plugin, version, state and negotiated capabilities. */
export function registerProvidersCommand(program: Command): Command {
  const providers = program.command('providers').description('the provider instances that run workers');
  withApiOptions(providers.command('list'))
    .description('list provider instances: plugin, version, state, negotiated capabilities')
    .action(action(async (opts: ApiOptions) => {
      const list = await (await clientFor(opts)).request('GET', '/v1/providers', { schema: ProviderList });
      if (opts.json === true) return printJson(list);
      out(formatTable<Provider>([
        { header: 'instance', value: (p) => `${p.instance}${p.default ? ' (default)' : ''}` },
        { header: 'plugin', value: (p) => p.plugin },
        { header: 'version', value: (p) => p.version ?? '-' },
        { header: 'state', value: (p) => p.state },
        { header: 'isolation', value: (p) => p.isolation },
        { header: 'capabilities', value: (p) => (p.error === null ? capabilityList(p.capabilities) : p.error.code) },
      ], list.providers));
    }));
  return providers;
}
