import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runLedgerCrash } from '../helpers/ledgerCrash.ts';
import { killProcessWorkers } from '../helpers/processWorkers.ts';
import { processProviderYaml } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';
import { killWorkerProcesses, workerProcessGroups } from '../helpers/workerProcesses.ts';

// A real `wm serve` is SIGKILLed while it creates 300 process workers through the API (10 at a time), the kill aimed
// at a create the provider is in the middle of. After a restart on the same state dir, every process the OS runs for
// a worker has a live record and every live record a running process; retrying every create with its Idempotency-Key
// makes no duplicate; terminating all leaves no process. The OS is read from /proc (working directory under the
// test's folder, WM_WORKER_ID in the environment), not from the provider's files, so a process the provider lost
// track of counts too.
describe('the worker ledger survives a host SIGKILLed while creating process workers', () => {
  it('300 creates, SIGKILL mid-create after 100 acknowledgements, restart: ledger and OS agree, retries make 0 duplicates, terminate leaves 0 processes', { timeout: budget(900_000) }, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-ledger-crash-'));
    const instanceDir = path.join(dir, 'state', 'instances', 'a');
    t.after(async () => {
      await killProcessWorkers(instanceDir);
      await killWorkerProcesses(dir);
      await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    });
    const workersDir = path.join(instanceDir, 'workers');
    const report = await runLedgerCrash(t, {
      hostId: 'ledger-crash',
      dir,
      // The provider's default cap is 64 workers; the test holds 300 at once.
      providerYaml: processProviderYaml('a', '{ maxWorkers: 1000 }'),
      spec: () => ({ command: ['sleep', '3600'], labels: { suite: 'ledger-crash' } }),
      count: 300,
      concurrency: 10,
      killAfterAcks: 100,
      // From then on, the kill is aimed at a create the provider is in the middle of: a worker is claimed
      // (creating/<id>, where its folder is put together) and not yet recorded under workers/.
      killWhen: async () => (await readdir(path.join(instanceDir, 'creating')).catch(() => [] as string[])).length > 0,
      // A process whose folder has no meta.json is one its provider cannot see, stop or list: said so in a failure.
      infrastructure: async () =>
        new Map([...(await workerProcessGroups(dir))].map(([id, groups]) => [id, [...groups].map(() => (existsSync(path.join(workersDir, id, 'meta.json')) ? 'running' : 'running without meta.json'))])),
      leftovers: async () => [],
      log: (line) => t.diagnostic(line),
    });
    t.diagnostic(JSON.stringify(report));
  });
});
