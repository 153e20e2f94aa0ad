import Type, { type Static } from 'typebox';
import { InvalidArgumentError, type Command } from 'commander';
import type { RoutedWorker } from '../../api/apiSchemas.ts';
import {
  ExecutionResult, LogChunk, PortForwardResult, RestartResult, TerminateResult, WorkerPage, WorkerStateResult, WorkerStatus,
} from '../../api/apiSchemas.ts';
import { hostError } from '../../errors.ts';
import { checkerFor } from '../client/checkerFor.ts';
import { EXIT } from '../client/exitCodes.ts';
import { followEventStream } from '../client/followEventStream.ts';
import { formatFields, formatTable, type Column } from '../output/formatTable.ts';
import { action, clientFor, collect, integer, note, out, printJson, withApiOptions, type ApiOptions } from './apiCommand.ts';
import { createWorkerBody, type CreateFlags } from './createWorkerBody.ts';
import { describeState, exitCodeOfWorker, processExitCode, stderrProgress, waitForWorker, type WaitUntil } from './waitForWorker.ts';

type Routed = Static<typeof RoutedWorker>;

const workerColumns: ReadonlyArray<Column<Routed>> = [
  { header: 'id', value: (r) => r.worker.workerId },
  { header: 'instance', value: (r) => r.instance },
  { header: 'state', value: (r) => describeState(r.worker.state) },
  { header: 'created', value: (r) => r.worker.createdAt },
  // The host's own bookkeeping labels (worker-manager/host, .../instance) would drown the caller's; --json has them.
  { header: 'labels', value: (r) => Object.entries(r.worker.labels).filter(([k]) => !k.startsWith('worker-manager/')).map(([k, v]) => `${k}=${v}`).join(',') },
];

const path = (id: string, suffix = ''): string => `/v1/workers/${encodeURIComponent(id)}${suffix}`;

/** `--wait` values. */
function waitUntil(value: string): WaitUntil {
  if (value !== 'running' && value !== 'exit') throw new InvalidArgumentError('expected running or exit');
  return value;
}

/** A create's answer as a table row. */
function routedOf(status: Static<typeof WorkerStatus>): Routed {
  return {
    instance: status.instance,
    worker: { workerId: status.workerId, state: status.state, labels: status.record?.labels ?? {}, createdAt: status.record?.createdAt ?? '' },
  };
}

/** `wm workers ...`: every worker route of the API. */
export function registerWorkersCommand(program: Command): Command {
  const workers = program.command('workers').description('create, list, inspect and control workers through the API');

  withApiOptions(workers.command('create'))
    .description('create a worker and wait until it runs, or has ended (progress on stderr); an ended worker\'s exit code is wm\'s')
    .argument('[command...]', 'command and arguments (after --); with --cmd, the arguments only')
    .option('-f, --file <spec>', 'spec file, JSON or YAML (- for stdin): a RuntimeSpec, or a request { spec, provider?, workerId?, labels? }')
    .option('--image <ref>', 'container image (container providers)')
    .option('--cmd <program>', 'the program to run; the words after -- become its arguments')
    .option('-e, --env <KEY=VALUE>', 'environment variable (repeatable)', collect)
    .option('-l, --label <KEY=VALUE>', 'label (repeatable)', collect)
    .option('-p, --provider <instance>', 'provider instance (default: the host\'s default provider)')
    .option('--worker-id <id>', 'worker id to use (default: one the host makes)')
    .option('--cpu <cpu>', 'CPU: cores (0.5, 2) or millicores (500m)')
    .option('--memory <size>', 'memory: MiB (512, 512Mi) or GiB (1Gi)')
    .option('--timeout <ms>', 'stop the worker after this many milliseconds', integer)
    .option('--idempotency-key <key>', 'a repeat with the same key returns the first worker instead of a second one')
    .option('--wait <until>', 'running: until the worker runs, or has already ended; exit: until it ends (its exit code becomes wm\'s, like docker run)', waitUntil, 'running')
    .option('--no-wait', 'return as soon as the host accepted the worker')
    .option('--wait-timeout <ms>', 'how long to wait', integer, 120_000)
    .action(action(async (command: string[], opts: ApiOptions & CreateFlags & { idempotencyKey?: string; wait: WaitUntil | false; waitTimeout: number }) => {
      const body = await createWorkerBody(opts, command);
      const client = await clientFor(opts);
      const progress = stderrProgress();
      progress.update(`creating worker${body.provider === undefined ? '' : ` on ${body.provider}`}...`);
      const created = await client.request('POST', '/v1/workers', {
        body,
        schema: WorkerStatus,
        timeoutMs: opts.waitTimeout,
        ...(opts.idempotencyKey === undefined ? {} : { headers: { 'idempotency-key': opts.idempotencyKey } }),
      });
      let result = created;
      if (opts.wait !== false) {
        // The worker as the wait last read it: the create's answer, refreshed.
        result = await waitForWorker(client, created.workerId, { until: opts.wait, timeoutMs: opts.waitTimeout, progress, initial: created });
      } else {
        progress.done(`worker ${created.workerId} created on ${created.instance}: ${describeState(created.state)}`);
      }
      if (opts.json === true) printJson(result);
      else out(formatTable(workerColumns, [routedOf(result)]));
      if (opts.wait === false) return EXIT.ok;
      const code = exitCodeOfWorker(result.state);
      if (code === undefined) {
        throw hostError('HOST_ERR_CLI_WORKER_NOT_RUNNING', `worker ${result.workerId} failed before it ran: ${describeState(result.state)}`, { details: { workerId: result.workerId, phase: result.state.phase } });
      }
      return code;
    }));

  withApiOptions(workers.command('list'))
    .description('list workers (sorted by instance, then id)')
    .option('-p, --provider <instance>', 'only this provider instance')
    .option('--state <phase>', 'only workers in this phase (Running, Paused, Failed, ...)')
    .option('-l, --label <KEY=VALUE>', 'only workers with this label (repeatable: all must match)', collect)
    .option('--limit <n>', 'page size (1-500)', integer)
    .option('--cursor <cursor>', 'page to start from (a nextCursor)')
    .option('-A, --all', 'follow nextCursor through every page')
    .action(action(async (opts: ApiOptions & { provider?: string; state?: string; label?: string[]; limit?: number; cursor?: string; all?: boolean }) => {
      const client = await clientFor(opts);
      const query = { provider: opts.provider, state: opts.state, label: opts.label, limit: opts.limit };
      let page = await client.request('GET', '/v1/workers', { query: { ...query, cursor: opts.cursor }, schema: WorkerPage });
      const items = [...page.items];
      while (opts.all === true && page.nextCursor !== undefined) {
        page = await client.request('GET', '/v1/workers', { query: { ...query, cursor: page.nextCursor }, schema: WorkerPage });
        items.push(...page.items);
      }
      const result = { items, ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) };
      if (opts.json === true) {
        printJson(result);
        return;
      }
      out(formatTable(workerColumns, items));
      if (result.nextCursor !== undefined) note(`more workers: --cursor ${result.nextCursor}, or --all`);
    }));

  withApiOptions(workers.command('get'))
    .description('show one worker\'s state')
    .argument('<id>', 'worker id')
    .action(action(async (id: string, opts: ApiOptions) => {
      const status = await (await clientFor(opts)).request('GET', path(id), { schema: WorkerStatus });
      if (opts.json === true) return printJson(status);
      const { state } = status;
      out(formatFields([
        ['id', status.workerId],
        ['instance', status.instance],
        ['phase', state.phase],
        ...('exitCode' in state && state.exitCode !== undefined ? [['exit code', String(state.exitCode)] as const] : []),
        ...(state.phase === 'Failed' ? [['reason', state.reason] as const] : []),
      ]));
    }));

  withApiOptions(workers.command('logs'))
    .description('print a worker\'s output; -f follows it until the worker ends (resuming after a dropped connection)')
    .argument('<id>', 'worker id')
    .option('-f, --follow', 'keep printing new output until the worker ends')
    .option('--tail <n>', 'only the last n lines', integer)
    .option('--since-seq <seq>', 'from this chunk sequence number on (inclusive)', integer)
    .option('--no-stdout', 'leave out the worker\'s stdout')
    .option('--no-stderr', 'leave out the worker\'s stderr')
    .action(action(async (id: string, opts: ApiOptions & { follow?: boolean; tail?: number; sinceSeq?: number; stdout: boolean; stderr: boolean }) => {
      const client = await clientFor(opts);
      const base = { tailLines: opts.tail, sinceSeq: opts.sinceSeq, ...(opts.stdout ? {} : { stdout: false }), ...(opts.stderr ? {} : { stderr: false }) };
      const print = (chunk: Static<typeof LogChunk>): void => {
        if (opts.json === true) process.stdout.write(`${JSON.stringify(chunk)}\n`);
        else (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data);
      };
      if (opts.follow !== true) {
        const chunks = await client.request('GET', path(id, '/logs'), { query: base, schema: Type.Array(LogChunk) });
        if (opts.json === true) return printJson(chunks);
        for (const chunk of chunks) print(chunk);
        return;
      }
      const stream = followEventStream(client, path(id, '/logs'), {
        // After a reconnect Last-Event-ID says where to resume; a tail would cut what was missed.
        query: (lastId) => (lastId === undefined ? { ...base, follow: true } : { follow: true, stdout: base.stdout, stderr: base.stderr }),
        onReconnect: (lastId) => note(`log stream dropped; resuming after seq ${lastId ?? '(start)'}`),
      });
      for await (const event of stream) {
        if (event.event !== 'log') continue;
        const chunk: unknown = JSON.parse(event.data);
        if (!checkerFor(LogChunk).Check(chunk)) throw hostError('HOST_ERR_CLI_BAD_RESPONSE', `the log stream sent an event that is not a log chunk (id ${event.id ?? '?'})`);
        print(chunk);
      }
    }));

  withApiOptions(workers.command('exec'))
    .description('run a command in a worker; exits with the command\'s exit code (with --json: 0, the code is in the JSON)')
    .argument('<id>', 'worker id')
    .argument('<command...>', 'command and arguments (after --)')
    .option('--timeout <ms>', 'give the command this long (124 when it runs out)', integer)
    .action(action(async (id: string, command: string[], opts: ApiOptions & { timeout?: number }) => {
      const client = await clientFor(opts);
      const result = await client.request('POST', path(id, '/exec'), {
        body: { command, ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout }) },
        schema: ExecutionResult,
        // The host bounds the command; the request waits a little longer than it, or an hour without a timeout.
        timeoutMs: (opts.timeout ?? 3_600_000) + 10_000,
      });
      if (opts.json === true) return printJson(result);
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      if (result.truncated === true) note('output was truncated by the provider');
      if (result.timedOut) {
        note(`the command timed out after ${result.durationMs} ms`);
        return 124;
      }
      return processExitCode(result.exitCode);
    }));

  for (const op of ['pause', 'resume'] as const) {
    withApiOptions(workers.command(op))
      .description(op === 'pause' ? 'freeze a worker\'s processes' : 'thaw a paused worker')
      .argument('<id>', 'worker id')
      .action(action(async (id: string, opts: ApiOptions) => {
        const result = await (await clientFor(opts)).request('POST', path(id, `/${op}`), { schema: WorkerStateResult });
        if (opts.json === true) return printJson(result);
        out(`worker ${result.workerId}: ${describeState(result.state)}`);
      }));
  }

  withApiOptions(workers.command('restart'))
    .description('restart a worker with its spec')
    .argument('<id>', 'worker id')
    .action(action(async (id: string, opts: ApiOptions) => {
      const result = await (await clientFor(opts)).request('POST', path(id, '/restart'), { schema: RestartResult });
      if (opts.json === true) return printJson(result);
      out(`worker ${result.worker.workerId}: ${describeState(result.worker.state)}`);
    }));

  withApiOptions(workers.command('terminate'))
    .description('stop a worker; its record stays (Terminated) for the retention period, and terminating an ended worker removes its record')
    .argument('<id>', 'worker id')
    .option('--grace-period <ms>', 'time between the polite stop and the kill', integer)
    .action(action(async (id: string, opts: ApiOptions & { gracePeriod?: number }) => {
      const result = await (await clientFor(opts)).request('DELETE', path(id), {
        query: { gracePeriodMs: opts.gracePeriod },
        schema: TerminateResult,
        timeoutMs: (opts.gracePeriod ?? 0) + 60_000,
      });
      if (opts.json === true) return printJson(result);
      out(result.alreadyGone
        ? `worker ${result.workerId} on ${result.instance ?? '?'} had already ended (${describeState(result.state)}); its record is removed`
        : `worker ${result.workerId} on ${result.instance ?? '?'}: ${describeState(result.state)}`);
    }));

  withApiOptions(workers.command('port-forward'))
    .description('open a loopback endpoint, on the host, that reaches a port of the worker')
    .argument('<id>', 'worker id')
    .argument('<remotePort>', 'port inside the worker', integer)
    .option('--local-port <port>', 'port to listen on (default: any free one)', integer)
    .action(action(async (id: string, remotePort: number, opts: ApiOptions & { localPort?: number }) => {
      const result = await (await clientFor(opts)).request('POST', path(id, '/port-forward'), {
        body: { remotePort, ...(opts.localPort === undefined ? {} : { localPort: opts.localPort }) },
        schema: PortForwardResult,
      });
      if (opts.json === true) return printJson(result);
      out(`worker ${result.workerId} port ${remotePort} -> ${result.endpoint}`);
    }));

  return workers;
}
