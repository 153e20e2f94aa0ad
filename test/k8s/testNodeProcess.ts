import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { collectOutput, finished } from '../helpers/childProcess.ts';
import { within } from '../helpers/waitFor.ts';

const MAIN = fileURLToPath(new URL('./testNodeMain.ts', import.meta.url));

/** A test node run by testNodeMain.ts in a child process: its namespace and the nodeSelector that pins pods to it. */
export interface TestNodeProcess {
  namespace: string;
  nodeName: string;
  nodeSelector: Record<string, string>;
  /** Stops the agent (its pods, its Node, the namespace) and waits for the process to end. */
  close(): Promise<void>;
}

/** Starts a test node of the cluster of `.ci/kube up` (WM_KUBE_DIR) in a child Node process with this one's loader. */
export async function startTestNodeProcess(prefix: string): Promise<TestNodeProcess> {
  // stdin is the lifeline: the child stops its node when it closes, also when this process dies.
  const child = spawn(process.execPath, [...process.execArgv, MAIN, prefix], { stdio: ['pipe', 'pipe', 'pipe'] });
  let announce: (line: string) => void = () => {};
  const announced = new Promise<string>((resolve) => (announce = resolve));
  const output = collectOutput(child, {
    onStdout: (text) => {
      if (text.includes('\n')) announce(text.slice(0, text.indexOf('\n')));
    },
  });
  const ended = output.closed.then((run) => {
    throw new Error(`the test node process exited early (${run.code ?? run.signal}): ${output.output()}`);
  });
  // Only the wait for Ready cares how it ends; after it, close() does.
  ended.catch(() => {});
  const line = await within(Promise.race([announced, ended]), () => `the test node process to be Ready (${output.output()})`, 120_000);
  const node = JSON.parse(line) as Omit<TestNodeProcess, 'close'>;
  return {
    ...node,
    async close() {
      child.stdin.end();
      const run = await finished(child, 'the test node process to stop its node', output, 120_000);
      if (run.code !== 0) throw new Error(`the test node process exited with ${run.code ?? run.signal}: ${output.output()}`);
    },
  };
}
