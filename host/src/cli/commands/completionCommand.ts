import { Argument, type Command } from 'commander';
import { action, out } from './apiCommand.ts';
import { bashCompletion, zshCompletion } from './completionScript.ts';

/** `wm completion bash|zsh`: prints a completion script built from the program's own command tree. */
export function registerCompletionCommand(program: Command): Command {
  return program
    .command('completion')
    .description('print a shell completion script (bash: source <(wm completion bash); zsh: source <(wm completion zsh))')
    .addArgument(new Argument('<shell>', 'shell').choices(['bash', 'zsh']))
    .action(action(async (shell: 'bash' | 'zsh') => {
      out(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    }));
}
