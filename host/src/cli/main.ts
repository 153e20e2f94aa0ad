#!/usr/bin/env node
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { Command, Option } from 'commander';
import type { LogLevel } from '../observability/logger.ts';
import { PRODUCT_VERSION } from '../version.ts';
import { registerAuditCommand } from './auditCommand.ts';
import { registerClientCommands } from './commands/registerClientCommands.ts';
// serve, run and config validate load the whole host (about 1.5 s); they are imported when used, so that the API
// commands, which need only an HTTP client, start fast.

/** Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage; the API commands add 3-6 (client/exitCodes.ts). */
export const EXIT = { ok: 0, failure: 1, config: 2 } as const;

const program = new Command('wm')
  .description('worker-manager: create, watch and tear down ephemeral CI/CD workers')
  .version(PRODUCT_VERSION, '-V, --version', 'print wm\'s version (wm version also asks the host)')
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.config));

program
  .command('serve')
  .description('start the host and keep it running until SIGINT/SIGTERM')
  .addOption(new Option('-c, --config <file>', 'config file').default('config/default.yaml').env('WM_CONFIG'))
  .action(async (opts: { config: string }) => {
    const { serveCommand } = await import('./serveCommand.ts');
    process.exitCode = await serveCommand(opts.config);
  });

program
  .command('run')
  .description('start the host, run one worker to completion with its output on this terminal, then stop')
  .addOption(new Option('-c, --config <file>', 'config file').default('config/default.yaml').env('WM_CONFIG'))
  .option('-p, --provider <instance>', 'provider instance (default: the default provider)')
  .option('--timeout <ms>', 'stop the worker after this many milliseconds', (v) => Number.parseInt(v, 10))
  // Host logs would bury the worker's own output on a terminal; warnings and errors still show.
  .addOption(new Option('--log-level <level>', 'host log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('warn'))
  .argument('<command...>', 'command and arguments to run as the worker (put them after --)')
  .action(async (command: string[], opts: { config: string; provider?: string; timeout?: number; logLevel: LogLevel }) => {
    const { runCommand } = await import('./runCommand.ts');
    process.exitCode = await runCommand(opts.config, command, opts);
  });

const config = program.command('config').description('work with config files');
config
  .command('validate')
  .description('check a config file and every plugin it names, without running plugin code')
  .argument('<file>', 'config file')
  .action(async (file: string) => {
    const { validateCommand } = await import('./validateCommand.ts');
    process.exitCode = await validateCommand(file);
  });

// workers, plugins, providers, secrets, events, completion: commands that call a running host's API.
registerClientCommands(program);
registerAuditCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`wm: ${isWorkerManagerError(error) ? `[${error.code}] ${error.message}` : String(error)}\n`);
  process.exitCode = EXIT.failure;
});
