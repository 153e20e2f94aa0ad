// Baseline of the rpc-overhead bench: the same echo work as the echo fixture plugin, as a bare piscina task
// handler with no protocol, no validation and no sandbox.
const workers = new Map();

export default function rawEcho(task) {
  if (task.method === 'createWorker') {
    const { workerId, spec } = task.params;
    let worker = workers.get(workerId);
    if (worker === undefined) {
      worker = { workerId, state: { phase: 'Running' }, labels: { ...spec.labels }, createdAt: new Date().toISOString(), providerRef: `echo-${workerId}` };
      workers.set(workerId, worker);
    }
    return worker;
  }
  const { command } = task.params;
  return { exitCode: 0, stdout: command.join(' '), stderr: '', durationMs: 0, timedOut: false };
}
