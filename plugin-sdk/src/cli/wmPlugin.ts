#!/usr/bin/env node
/**
 * `wm-plugin`: the plugin author's tool, shipped as the SDK package's `bin`.
 *
 * - `wm-plugin metadata [--check] [dir...]` writes (or, with `--check`, verifies) the package.json `workerManager`
 *   block from the plugin's `definePlugin` call; `dir` defaults to the current folder.
 * - `wm-plugin init <dir> --kind provider|credentials --name <id> [--package <npm-name>]` scaffolds a plugin.
 *
 * In this repository it runs through tsx (`npx tsx plugin-sdk/src/cli/wmPlugin.ts ...`); `npm run plugin:metadata`
 * is the same `metadata` command.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { initPlugin } from './initPlugin.ts';
import { isMainModule } from './isMainModule.ts';
import { main as metadataMain } from './syncMetadata.ts';

const USAGE = `usage:
  wm-plugin metadata [--check] [pluginDir...]
  wm-plugin init <dir> --kind provider|credentials --name <id> [--package <npm-name>]
`;

async function init(args: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { kind: { type: 'string' }, name: { type: 'string' }, package: { type: 'string' } },
    });
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const kind = values.kind;
  if (positionals.length !== 1 || values.name === undefined || (kind !== 'provider' && kind !== 'credentials')) {
    process.stderr.write(USAGE);
    return 2;
  }
  const dir = positionals[0] as string;
  try {
    const files = await initPlugin(dir, { id: values.name, kind, ...(values.package === undefined ? {} : { packageName: values.package }) });
    const relative = path.relative(process.cwd(), path.resolve(dir));
    const shown = relative === '' ? '.' : relative.startsWith('..') ? path.resolve(dir) : relative;
    process.stdout.write(`created ${kind} plugin '${values.name}' in ${shown}:\n${files.map((f) => `  ${f}\n`).join('')}next: cd ${shown} && npm install && npm test\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** The CLI: returns the exit code (2 for a usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'metadata') {
    return metadataMain(rest, { usage: 'wm-plugin metadata [--check] [pluginDir...]', fix: 'wm-plugin metadata <pluginDir>', defaultDir: '.' });
  }
  if (command === 'init') return init(rest);
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  process.stderr.write(USAGE);
  return 2;
}

if (isMainModule(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
