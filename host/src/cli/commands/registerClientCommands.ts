import type { Command } from 'commander';
import { registerCompletionCommand } from './completionCommand.ts';
import { registerEventsCommand } from './eventsCommand.ts';
import { registerPluginsCommand } from './pluginsCommand.ts';
import { registerProvidersCommand } from './providersCommand.ts';
import { registerSecretsCommand } from './secretsCommand.ts';
import { registerVersionCommand } from './versionCommand.ts';
import { registerWorkersCommand } from './workersCommand.ts';

/** Adds the commands that talk to a running host over the REST API, and `completion`. */
export function registerClientCommands(program: Command): void {
  // `wm workers logs -f ID | head` closes our stdout early: that is the reader being done, not a failure to report.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  registerWorkersCommand(program);
  registerPluginsCommand(program);
  registerProvidersCommand(program);
  registerSecretsCommand(program);
  registerEventsCommand(program);
  registerCompletionCommand(program);
  registerVersionCommand(program);
}
