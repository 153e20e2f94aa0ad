import { HOST_API_VERSION } from '@worker-manager/plugin-sdk';
import type { Command } from 'commander';
import { VersionInfo } from '../../api/apiSchemas.ts';
import { PRODUCT_VERSION } from '../../version.ts';
import { redactUrl } from '../client/cliConfig.ts';
import { action, clientFor, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';

/**
 * `wm version`: this client's version, then the host's (from its public `/version`), as `kubectl version` does. An
 * unreachable host is an error after the client line (exit 5), so that a script learns both facts from one call.
 */
export function registerVersionCommand(program: Command): Command {
  return withApiOptions(program.command('version'))
    .description('print the versions of wm and of the host it talks to')
    .option('--client', 'only this client\'s version; do not contact a host')
    .action(action(async (opts: ApiOptions & { client?: boolean }) => {
      const client = { version: PRODUCT_VERSION, hostApi: HOST_API_VERSION };
      if (opts.client === true) {
        if (opts.json === true) printJson({ client });
        else out(`client: ${client.version} (plugin host API ${client.hostApi})`);
        return;
      }
      if (opts.json !== true) out(`client: ${client.version} (plugin host API ${client.hostApi})`);
      const api = await clientFor(opts);
      const host = await api.request('GET', '/version', { schema: VersionInfo });
      if (opts.json === true) printJson({ client, host: { ...host, url: redactUrl(api.url) } });
      else out(`host:   ${host.version} (plugin host API ${host.hostApi}) at ${redactUrl(api.url)}`);
    }));
}
