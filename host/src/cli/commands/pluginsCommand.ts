import type { Static } from 'typebox';
import type { Command } from 'commander';
import { PluginDetail, PluginList, type PluginRow } from '../../api/apiSchemas.ts';
import { formatFields, formatTable } from '../output/formatTable.ts';
import { action, clientFor, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';

type Plugin = Static<typeof PluginRow>;

const errorText = (error: { code: string; message: string } | null): string => (error === null ? '' : error.code);

/** `wm plugins list|inspect`: the plugin packages the host loaded, their versions, capabilities and instances. */
export function registerPluginsCommand(program: Command): Command {
  const plugins = program.command('plugins').description('the plugins the host loaded');

  withApiOptions(plugins.command('list'))
    .description('list plugins: version, kind, isolation, instances and their states')
    .action(action(async (opts: ApiOptions) => {
      const list = await (await clientFor(opts)).request('GET', '/v1/plugins', { schema: PluginList });
      if (opts.json === true) return printJson(list);
      out(formatTable<Plugin>([
        { header: 'name', value: (p) => p.name },
        { header: 'id', value: (p) => p.id ?? '-' },
        { header: 'version', value: (p) => p.version ?? '-' },
        { header: 'kind', value: (p) => p.kind ?? '-' },
        { header: 'isolation', value: (p) => p.isolation },
        { header: 'instances', value: (p) => p.instances.map((i) => `${i.name}${i.default ? '*' : ''}:${i.state}${i.restarts > 0 ? `(${i.restarts} restarts)` : ''}`).join(',') },
        { header: 'error', value: (p) => errorText(p.error) },
      ], list.plugins));
    }));

  withApiOptions(plugins.command('inspect'))
    .description('show one plugin: metadata, negotiated and declared capabilities, methods, instances')
    .argument('<name>', 'plugin name in the host config')
    .action(action(async (name: string, opts: ApiOptions) => {
      const p = await (await clientFor(opts)).request('GET', `/v1/plugins/${encodeURIComponent(name)}`, { schema: PluginDetail });
      if (opts.json === true) return printJson(p);
      const sections = [
        formatFields([
          ['name', p.name], ['id', p.id ?? '-'], ['package', p.package ?? '-'], ['version', p.version ?? '-'], ['kind', p.kind ?? '-'],
          ['contract', p.contract ?? '-'], ['host api', p.hostApi ?? '-'], ['isolation', p.isolation], ['on boot failure', p.onBootFailure],
          ['description', p.description ?? ''], ['methods', p.methods.join(', ')],
          ...(p.error === null ? [] : [['error', `[${p.error.code}] ${p.error.message}`] as const]),
        ]),
        formatTable<[string, string]>([
          { header: 'capability', value: ([c]) => c },
          { header: 'declared', value: ([, v]) => v },
          { header: 'negotiated', value: ([c]) => p.capabilities[c] ?? (p.ignoredCapabilities.find((i) => i.capability === c)?.reason ?? 'no') },
        ], Object.entries(p.declaredCapabilities)),
        formatTable([
          { header: 'instance', value: (i: Plugin['instances'][number]) => `${i.name}${i.default ? ' (default)' : ''}` },
          { header: 'state', value: (i) => i.state },
          { header: 'restarts', value: (i) => String(i.restarts) },
          { header: 'crashes', value: (i) => String(i.crashes) },
          { header: 'error', value: (i) => (i.error === null ? '' : `[${i.error.code}] ${i.error.message}`) },
        ], p.instances),
      ];
      out(sections.join('\n\n'));
    }));

  return plugins;
}
