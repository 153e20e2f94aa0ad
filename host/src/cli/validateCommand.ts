import path from 'node:path';
import { validateConfigFile } from '../config/validateConfigFile.ts';
import { displayPath, formatIssue } from '../config/formatIssues.ts';
import { defaultHostId } from '../Host.ts';
import { formatReport } from '../plugins/formatReport.ts';
import { PluginRegistry } from '../plugins/PluginRegistry.ts';
import { hostError } from '../errors.ts';

/**
 * `wm config validate`: the schema, every plugin package, its metadata, versions, capabilities and every instance
 * config, with no plugin code run. Exit 0 when everything would boot, 2 otherwise.
 */
export async function validateCommand(file: string): Promise<number> {
  const result = await validateConfigFile(file);
  if (!result.ok) {
    process.stderr.write(`${displayPath(path.resolve(file))}: invalid [${result.code}]\n${result.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`);
    return 2;
  }
  const loaded = result.loaded;
  const registry = new PluginRegistry({
    loaded,
    hostId: loaded.config.host.id ?? defaultHostId(),
    stateDir: path.resolve(loaded.dir, loaded.config.host.stateDir),
    validateOnly: true,
    sandboxFactory: () => {
      throw hostError('HOST_ERR_PLUGIN_STOPPED', 'validation starts no plugin');
    },
  });
  const report = await registry.boot();
  process.stdout.write(`${formatReport(report)}\n`);
  const failed = report.filter((r) => r.error !== null);
  process.stdout.write(failed.length === 0 ? 'config is valid\n' : `${failed.length} problem(s)\n`);
  return failed.length === 0 ? 0 : 2;
}
