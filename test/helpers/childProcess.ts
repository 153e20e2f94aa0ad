import type { ChildProcess } from 'node:child_process';
import { within } from './waitFor.ts';

/** How a child process ended and what it printed. */
export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Told the whole output of one stream so far, each time it grows. */
export type OnOutput = (text: string, child: ChildProcess) => void;

/** A child's output as it comes, and its end. */
export interface CollectedOutput {
  /** Resolves once the child ended and its output is all read ('close', not 'exit', which can come first). */
  closed: Promise<ChildRun>;
  /** The output so far, for a failure message. */
  output(): string;
}

/** Collects what a child spawned with piped stdout and stderr prints. */
export function collectOutput(child: ChildProcess, options: { onStdout?: OnOutput; onStderr?: OnOutput } = {}): CollectedOutput {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    options.onStdout?.(stdout, child);
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    options.onStderr?.(stderr, child);
  });
  const closed = new Promise<ChildRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { closed, output: () => `stdout: ${stdout}; stderr: ${stderr}` };
}

/**
 * Waits for a child to end, and SIGKILLs it if it has not when the budget runs out (or the wait fails). The budget
 * bounds a hang, so it is sized for a loaded machine: a child that starts Node and compiles TypeScript takes 10-15 s
 * there, one that also boots a host 30 s and more.
 */
export async function finished(child: ChildProcess, what: string, collected: CollectedOutput, timeoutMs = 120_000): Promise<ChildRun> {
  try {
    return await within(collected.closed, () => `${what} to finish; ${collected.output()}`, timeoutMs);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
