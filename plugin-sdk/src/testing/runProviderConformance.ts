import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LogChunk, LogOptions } from '../contracts/logs.ts';
import type { Proxied } from '../contracts/operation.ts';
import type { RuntimeSpec } from '../contracts/runtimeSpec.ts';
import type { SecretMount } from '../contracts/secretRef.ts';
import type { Worker } from '../contracts/worker.ts';
import type { WorkerEvent } from '../contracts/workerEvent.ts';
import { WorkerProviderContract } from '../contracts/workerProvider.ts';
import type { WorkerState } from '../contracts/workerState.ts';
import { isWorkerManagerError } from '../errors/WorkerManagerError.ts';

/** One running provider to test, made fresh by {@link ConformanceTarget.setup}. */
export interface ConformanceSession {
  /** The provider under test: the in-process harness proxy, or the host's sandbox proxy. */
  provider: Proxied<WorkerProviderContract>;
  /** Events the provider emitted so far; required when it declares `worker.events`. */
  events?: () => readonly WorkerEvent[];
  /** Releases the provider (workers the suite created are terminated before this runs). */
  teardown(): Promise<void>;
}

/** What {@link runProviderConformance} needs to know about a provider. */
export interface ConformanceTarget {
  /** Shown in the test names. */
  name: string;
  /** The capabilities the provider declares (name to version), e.g. the `capabilities` of its definition. */
  capabilities: Record<string, string>;
  setup(): Promise<ConformanceSession>;
  /**
   * A worker that prints `marker` and a newline to stdout, then keeps running until it is terminated (say `sleep 600`:
   * on a loaded machine a test can take minutes, and a worker that ends by itself mid-test fails it).
   */
  longRunningSpec(marker: string): RuntimeSpec;
  /** A worker that prints `marker` to stdout only after `delayMs`, then keeps running. Needed for `worker.logs.follow`. */
  delayedSpec?(marker: string, delayMs: number): RuntimeSpec;
  /** A worker that prints `marker` and exits at once with `exitCode`. When given, exit reporting is tested. */
  shortSpec?(marker: string, exitCode: number): RuntimeSpec;
  /**
   * Commands (run through `executeCommand`) that print, with nothing added, the content of the worker's file secret
   * mounted at the relative `path`, and the value of an environment variable. Needed for `worker.secrets.refresh`.
   */
  secretProbe?: { file(path: string): string[]; env(name: string): string[] };
  /**
   * How long asynchronous effects (output in logs, events, exits) may take to show before a test fails, in ms before
   * {@link ConformanceTarget.timeFactor | timeFactor} scales it; default 20000. It bounds a failure (an event that never
   * comes), so it is sized for a loaded machine, not for the expected time: a passing test waits only as long as the
   * effect takes.
   */
  settleMs?: number;
  /** Timeout of each test, in ms before {@link ConformanceTarget.timeFactor | timeFactor} scales it; default 120000. */
  testTimeoutMs?: number;
  /**
   * Multiplies every wait and timeout of the suite (`settleMs`, `testTimeoutMs`, and its own internal waits) so that a
   * slow or busy machine makes the suite slower, never red. Default: the `WM_TEST_TIME_FACTOR` environment variable, or
   * 1. Must be a number >= 1.
   */
  timeFactor?: number;
}

type Provider = Proxied<WorkerProviderContract>;
type LogStream = AsyncIterable<LogChunk> & { cancel(): void };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The states createWorker may answer for a long-running worker: accepted, on its way, or already running. */
const ACCEPTED_PHASES: ReadonlySet<string> = new Set(['Creating', 'Starting', 'Running']);

/** Default settle time and per-test timeout, before scaling: sized for a loaded 2-core machine, not an idle one. */
const DEFAULT_SETTLE_MS = 20_000;
const DEFAULT_TEST_TIMEOUT_MS = 120_000;

function readTimeFactor(value: number | string | undefined, source: string): number {
  if (value === undefined || value === '') return 1;
  const factor = Number(value);
  if (!Number.isFinite(factor) || factor < 1) throw new TypeError(`${source} must be a number >= 1, got '${String(value)}'`);
  return factor;
}

async function expectCode(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isWorkerManagerError(error), `${what}: expected a WorkerManagerError, got ${String(error)}`);
    assert.equal(error.code, code, `${what}: expected ${code}, got ${error.code}: ${error.message}`);
    return true;
  });
}

/** Polls `probe` until it returns something other than undefined. */
async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`);
    await sleep(50);
  }
}

async function readAll(provider: Provider, workerId: string, options?: LogOptions): Promise<LogChunk[]> {
  const stream = await provider.getLogs(options === undefined ? { workerId } : { workerId, options });
  const out: LogChunk[] = [];
  for await (const chunk of stream) out.push(chunk);
  return out;
}

const textOf = (chunks: readonly LogChunk[]): string => chunks.map((c) => c.data).join('');

/** Pulls items until `done` says stop, the stream ends, or the time is up (then fails). */
async function readUntil(stream: LogStream, done: (seen: LogChunk[]) => boolean, timeoutMs: number, what: string): Promise<LogChunk[]> {
  const it = stream[Symbol.asyncIterator]();
  const seen: LogChunk[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(seen)) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
    });
    const r = await Promise.race([it.next(), timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      stream.cancel();
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${JSON.stringify(textOf(seen))}`);
    }
    if (r.done === true) break;
    seen.push(r.value);
  }
  return seen;
}

/** Waits for a stream to end by itself; fails if it does not within `timeoutMs`. */
async function expectEnds(stream: LogStream, timeoutMs: number, what: string): Promise<void> {
  const it = stream[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
    });
    const r = await Promise.race([it.next(), timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      stream.cancel();
      assert.fail(`${what}: the stream did not end within ${timeoutMs} ms`);
    }
    if (r.done === true) return;
  }
}

const isFinal = (s: WorkerState): boolean => s.phase === 'Terminated' || s.phase === 'Failed';

/**
 * Registers `node:test` suites that check a WorkerProvider against the contract: lifecycle, idempotency, errors,
 * capability refusals, and every optional operation the provider declares. It talks to the provider only through
 * a {@link Proxied} `WorkerProviderContract`, so the same suite runs against the in-process harness and against the
 * host's real sandbox. Call it at the top level of a test file.
 *
 * Conventions it pins: a requested termination ends in `Terminated`; after termination a worker is either
 * `WM_ERR_NOT_FOUND` or reported in a final state; `sinceSeq` never yields chunks before it; `tailLines: n` yields
 * the last `n` lines.
 *
 * @example
 * runProviderConformance({
 *   name: 'process', capabilities: plugin.capabilities,
 *   setup: async () => { const h = await createPluginHarness(plugin, { config: {} });
 *     return { provider: h.proxy, events: () => h.events, teardown: () => h.close() }; },
 *   longRunningSpec: (m) => ({ command: ['sh', '-c', `echo ${m}; exec sleep 600`] }),
 * });
 *
 * Waits and timeouts are sized for a loaded machine and scale with {@link ConformanceTarget.timeFactor} (by default
 * the `WM_TEST_TIME_FACTOR` environment variable): a slow machine makes the suite slower, not red.
 */
export function runProviderConformance(target: ConformanceTarget): void {
  const factor = target.timeFactor === undefined ? readTimeFactor(process.env['WM_TEST_TIME_FACTOR'], 'WM_TEST_TIME_FACTOR') : readTimeFactor(target.timeFactor, 'timeFactor');
  const scaled = (ms: number): number => Math.round(ms * factor);
  const settle = scaled(target.settleMs ?? DEFAULT_SETTLE_MS);
  const timeout = scaled(target.testTimeoutMs ?? DEFAULT_TEST_TIMEOUT_MS);
  // The worker of the follow test prints its marker this long after it starts. Creating it and opening the stream must
  // fit in between (the test checks the marker is not there yet), so it is seconds, scaled like every other wait.
  const followDelayMs = scaled(5_000);
  // A timed-out command must come back well before the command would have ended by itself (600 s): this bound lies
  // between the expected time (its 300 ms deadline) and that failure, with room for a loaded machine.
  const execStopMs = scaled(60_000);
  const has = (capability: string): boolean => target.capabilities[capability] !== undefined;
  const run = randomBytes(3).toString('hex');
  const created = new Set<string>();
  let session: ConformanceSession | undefined;
  let seq = 0;

  const p = (): Provider => {
    assert.ok(session !== undefined, 'conformance session did not start');
    return session.provider;
  };
  const newId = (tag: string): string => `cf-${run}-${tag}-${(seq++).toString(36)}`;
  const labelsFor = (id: string): Record<string, string> => ({ 'conformance/run': run, 'conformance/worker': id });
  const create = async (id: string, spec: RuntimeSpec): Promise<Worker> => {
    created.add(id);
    return p().createWorker({ workerId: id, spec: { ...spec, labels: { ...spec.labels, ...labelsFor(id) } } });
  };
  /** Waits until the provider reports the worker Running: createWorker only promises acceptance (contract 2). */
  const untilRunning = (id: string): Promise<WorkerState> =>
    waitFor(async () => {
      const state = await p().getWorkerStatus({ workerId: id });
      assert.ok(!isFinal(state), `${id} ended (${JSON.stringify(state)}) before it was Running`);
      return state.phase === 'Running' ? state : undefined;
    }, `${id} to be Running`, settle);
  /** Creates a worker and waits until it runs: what every test of an operation on a running worker starts from. */
  const createRunning = async (id: string, spec: RuntimeSpec): Promise<Worker> => {
    const worker = await create(id, spec);
    await untilRunning(id);
    return worker;
  };
  const terminate = async (id: string): Promise<void> => {
    await p().terminateWorker({ workerId: id, gracePeriodMs: 2_000 });
    created.delete(id);
  };
  const logsContain = (id: string, marker: string): Promise<LogChunk[]> =>
    waitFor(async () => {
      const chunks = await readAll(p(), id);
      return textOf(chunks).includes(marker) ? chunks : undefined;
    }, `'${marker}' in the logs of ${id}`, settle);

  describe(`WorkerProvider conformance: ${target.name}`, { timeout: timeout * 40 }, () => {
    before(async () => {
      session = await target.setup();
    });
    after(async () => {
      if (session === undefined) return;
      for (const id of created) await session.provider.terminateWorker({ workerId: id, gracePeriodMs: 0 }).catch(() => {});
      await session.teardown();
    });

    it('declares worker.lifecycle', () => {
      assert.ok(has('worker.lifecycle'), 'every provider must declare worker.lifecycle');
    });

    it('createWorker returns once the worker is accepted (Creating, Starting or Running), and the worker then reports Running', { timeout }, async () => {
      const id = newId('create');
      const worker = await create(id, target.longRunningSpec(`hello-${id}`));
      assert.equal(worker.workerId, id);
      assert.ok(ACCEPTED_PHASES.has(worker.state.phase), `createWorker answers an accepted worker's state, not ${JSON.stringify(worker.state)}`);
      assert.equal(worker.labels['conformance/worker'], id, 'the worker carries the labels of its spec');
      // Between acceptance and Running, the provider knows the worker: status and listing find it at once.
      const early = await p().getWorkerStatus({ workerId: id });
      assert.ok(ACCEPTED_PHASES.has(early.phase), `getWorkerStatus right after createWorker: ${JSON.stringify(early)}`);
      assert.deepEqual((await p().listWorkers({ labels: { 'conformance/worker': id } })).map((w) => w.workerId), [id], 'listWorkers finds an accepted worker');
      assert.deepEqual(await untilRunning(id), { phase: 'Running' });
      await terminate(id);
    });

    it('listWorkers finds the worker and filters by label', { timeout }, async () => {
      const id = newId('list');
      await createRunning(id, target.longRunningSpec(`list-${id}`));
      const all = await p().listWorkers({});
      assert.ok(all.some((w) => w.workerId === id), 'listWorkers({}) includes the new worker');
      const mine = await p().listWorkers({ labels: { 'conformance/worker': id } });
      assert.deepEqual(mine.map((w) => w.workerId), [id]);
      assert.equal(mine[0]?.state.phase, 'Running');
      const none = await p().listWorkers({ labels: { 'conformance/worker': `${id}-other` } });
      assert.equal(none.length, 0, 'a label that no worker has selects nothing');
      await terminate(id);
    });

    it('terminateWorker ends the worker as Terminated', { timeout }, async () => {
      const id = newId('term');
      await createRunning(id, target.longRunningSpec(`term-${id}`));
      const result = await p().terminateWorker({ workerId: id, gracePeriodMs: 2_000 });
      created.delete(id);
      assert.equal(result.workerId, id);
      assert.equal(result.alreadyGone, false);
      assert.equal(result.state.phase, 'Terminated');
      const after = await p().getWorkerStatus({ workerId: id }).then(
        (s) => s,
        (e: unknown) => (isWorkerManagerError(e) && e.code === 'WM_ERR_NOT_FOUND' ? undefined : Promise.reject(e)),
      );
      if (after !== undefined) assert.equal(after.phase, 'Terminated', 'a terminated worker is reported Terminated or not at all');
      const listed = (await p().listWorkers({ labels: { 'conformance/worker': id } }))[0];
      if (listed !== undefined) assert.ok(isFinal(listed.state), `a terminated worker is listed in a final state, not ${listed.state.phase}`);
    });

    it('createWorker is idempotent: the same workerId gives the same worker and one resource', { timeout }, async () => {
      const id = newId('idem');
      const spec = target.longRunningSpec(`idem-${id}`);
      const first = await create(id, spec);
      const second = await create(id, spec);
      assert.equal(second.workerId, first.workerId);
      assert.equal(second.createdAt, first.createdAt);
      assert.equal(second.providerRef, first.providerRef);
      assert.equal((await p().listWorkers({ labels: { 'conformance/worker': id } })).length, 1);

      const raced = newId('race');
      const specB = target.longRunningSpec(`race-${raced}`);
      const [a, b] = await Promise.all([create(raced, specB), create(raced, specB)]);
      assert.equal(a.providerRef, b.providerRef, 'concurrent creates with one id give one worker');
      assert.equal((await p().listWorkers({ labels: { 'conformance/worker': raced } })).length, 1);
      await terminate(id);
      await terminate(raced);
    });

    it('createWorker with a used workerId and a different spec fails with WM_ERR_ALREADY_EXISTS', { timeout }, async () => {
      const id = newId('exists');
      await create(id, target.longRunningSpec(`one-${id}`));
      await expectCode(create(id, target.longRunningSpec(`two-${id}`)), 'WM_ERR_ALREADY_EXISTS', 'create with another spec');
      await terminate(id);
    });

    it('terminateWorker is idempotent, and succeeds for a worker that never existed', { timeout }, async () => {
      const id = newId('twice');
      await createRunning(id, target.longRunningSpec(`twice-${id}`));
      const first = await p().terminateWorker({ workerId: id });
      const second = await p().terminateWorker({ workerId: id });
      created.delete(id);
      assert.equal(first.alreadyGone, false);
      assert.equal(second.alreadyGone, true);
      assert.ok(isFinal(second.state), `second terminate reports a final state, not ${second.state.phase}`);
      const ghost = await p().terminateWorker({ workerId: newId('ghost') });
      assert.equal(ghost.alreadyGone, true);
      assert.ok(isFinal(ghost.state));
    });

    it('operations on an unknown worker fail with WM_ERR_NOT_FOUND', { timeout }, async () => {
      const workerId = newId('missing');
      await expectCode(p().getWorkerStatus({ workerId }), 'WM_ERR_NOT_FOUND', 'getWorkerStatus');
      if (has('worker.exec')) await expectCode(p().executeCommand({ workerId, command: ['true'] }), 'WM_ERR_NOT_FOUND', 'executeCommand');
      if (has('worker.pause')) {
        await expectCode(p().pauseWorker({ workerId }), 'WM_ERR_NOT_FOUND', 'pauseWorker');
        await expectCode(p().resumeWorker({ workerId }), 'WM_ERR_NOT_FOUND', 'resumeWorker');
      }
      if (has('worker.restart')) await expectCode(p().restartWorker({ workerId }), 'WM_ERR_NOT_FOUND', 'restartWorker');
      if (has('worker.secrets.refresh')) await expectCode(p().refreshSecrets({ workerId, secrets: [] }), 'WM_ERR_NOT_FOUND', 'refreshSecrets');
      if (has('worker.logs')) await expectCode(readAll(p(), workerId), 'WM_ERR_NOT_FOUND', 'getLogs');
    });

    it('a malformed workerId is WM_ERR_VALIDATION', { timeout }, async () => {
      const workerId = 'Not_A_Valid_Id!';
      await expectCode(p().getWorkerStatus({ workerId }), 'WM_ERR_VALIDATION', 'getWorkerStatus');
      await expectCode(p().terminateWorker({ workerId }), 'WM_ERR_VALIDATION', 'terminateWorker');
      await expectCode(p().createWorker({ workerId, spec: target.longRunningSpec('never') }), 'WM_ERR_VALIDATION', 'createWorker');
    });

    const undeclared = Object.entries(WorkerProviderContract.operations).filter(([, op]) => !has(op.capability));
    const followUndeclared = has('worker.logs') && !has('worker.logs.follow');
    if (undeclared.length > 0 || followUndeclared) {
      it(`refuses undeclared operations with WM_ERR_COMPATIBILITY (${[...undeclared.map(([n]) => n), ...(followUndeclared ? ['getLogs follow'] : [])].join(', ')})`, { timeout }, async () => {
        const workerId = newId('compat');
        const sample: Record<string, unknown> = {
          createWorker: { workerId, spec: target.longRunningSpec('never') },
          terminateWorker: { workerId },
          getWorkerStatus: { workerId },
          listWorkers: {},
          getLogs: { workerId },
          portForward: { workerId, remotePort: 8080 },
          getCapacity: {},
          executeCommand: { workerId, command: ['true'] },
          restartWorker: { workerId },
          refreshSecrets: { workerId, secrets: [] },
          pauseWorker: { workerId },
          resumeWorker: { workerId },
        };
        for (const [name] of undeclared) {
          const fn = (p() as unknown as Record<string, (params: unknown) => Promise<unknown>>)[name];
          assert.ok(fn !== undefined && name in sample, `no sample params for ${name}`);
          await expectCode(fn(sample[name]), 'WM_ERR_COMPATIBILITY', name);
        }
        if (followUndeclared) await expectCode(readAll(p(), workerId, { follow: true }), 'WM_ERR_COMPATIBILITY', 'getLogs with follow');
      });
    }

    if (has('worker.logs')) {
      it('getLogs returns the output, in seq order, honouring sinceSeq, tailLines and stream selection', { timeout }, async () => {
        const id = newId('logs');
        const marker = `marker-${id}`;
        await create(id, target.longRunningSpec(marker));
        const chunks = await logsContain(id, marker);
        for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i]!.seq > chunks[i - 1]!.seq, 'seq increases along the stream');
        const first = chunks[0]!;
        const last = chunks.at(-1)!;
        const since = await readAll(p(), id, { sinceSeq: last.seq });
        assert.ok(since.every((c) => c.seq >= last.seq), 'sinceSeq yields nothing before it');
        const skipFirst = await readAll(p(), id, { sinceSeq: first.seq + 1 });
        assert.ok(skipFirst.every((c) => c.seq > first.seq), 'sinceSeq past the first chunk leaves it out');
        assert.equal((await readAll(p(), id, { tailLines: 0 })).length, 0, 'tailLines: 0 yields nothing');
        const tail = await readAll(p(), id, { tailLines: 1 });
        assert.equal(tail.length, 1, 'tailLines: 1 yields the last line');
        assert.ok(tail[0]!.data.includes(marker));
        const noStdout = await readAll(p(), id, { stdout: false });
        assert.ok(noStdout.every((c) => c.stream === 'stderr'), 'stdout: false leaves stdout out');
        await terminate(id);
      });
    }

    if (has('worker.logs.follow')) {
      it('getLogs with follow receives output produced after the call, and cancel ends it', { timeout }, async () => {
        assert.ok(target.delayedSpec !== undefined, 'the target must provide delayedSpec to test worker.logs.follow');
        const id = newId('follow');
        const marker = `late-${id}`;
        await createRunning(id, target.delayedSpec(marker, followDelayMs));
        const stream = await p().getLogs({ workerId: id, options: { follow: true } });
        assert.ok(!textOf(await readAll(p(), id)).includes(marker), 'the marker is not there yet when following starts');
        await readUntil(stream, (seen) => textOf(seen).includes(marker), followDelayMs + settle, `'${marker}' through follow`);
        stream.cancel();
        // The budget bounds a stream that never ends; one that ends does so at once and the race returns then.
        let timer: NodeJS.Timeout | undefined;
        const stuck = new Promise<'stuck'>((resolve) => {
          timer = setTimeout(() => resolve('stuck'), settle);
        });
        const r = await Promise.race([stream[Symbol.asyncIterator]().next(), stuck]);
        clearTimeout(timer);
        assert.notEqual(r, 'stuck', `a cancelled stream ends (waited ${settle} ms)`);
        assert.equal((r as IteratorResult<LogChunk>).done, true);
        await terminate(id);
      });

      it('getLogs with follow ends by itself when the worker ends', { timeout }, async () => {
        const id = newId('followend');
        const marker = `end-${id}`;
        await createRunning(id, target.longRunningSpec(marker));
        await logsContain(id, marker);
        const stream = await p().getLogs({ workerId: id, options: { follow: true } });
        await terminate(id);
        await expectEnds(stream, settle, 'follow after terminate');
      });
    }

    if (has('worker.exec')) {
      it('executeCommand returns exit code, stdout and stderr, and honours timeoutMs', { timeout }, async () => {
        const id = newId('exec');
        await createRunning(id, target.longRunningSpec(`exec-${id}`));
        const r = await p().executeCommand({ workerId: id, command: ['sh', '-c', `echo out-${id}; echo err-${id} >&2; exit 3`] });
        assert.equal(r.exitCode, 3);
        assert.ok(r.stdout.includes(`out-${id}`), `stdout: ${JSON.stringify(r.stdout)}`);
        assert.ok(r.stderr.includes(`err-${id}`), `stderr: ${JSON.stringify(r.stderr)}`);
        assert.equal(r.timedOut, false);
        const started = Date.now();
        const slow = await p().executeCommand({ workerId: id, command: ['sh', '-c', 'sleep 600'], timeoutMs: 300 });
        assert.equal(slow.timedOut, true);
        assert.notEqual(slow.exitCode, 0);
        assert.ok(Date.now() - started < execStopMs, `a timed-out command is stopped (took ${Date.now() - started} ms)`);
        await terminate(id);
      });
    }

    if (has('worker.pause')) {
      it('pauseWorker gives Paused and resumeWorker gives Running, both idempotent', { timeout }, async () => {
        const id = newId('pause');
        await createRunning(id, target.longRunningSpec(`pause-${id}`));
        assert.deepEqual(await p().pauseWorker({ workerId: id }), { phase: 'Paused' });
        assert.deepEqual(await p().getWorkerStatus({ workerId: id }), { phase: 'Paused' });
        assert.deepEqual(await p().pauseWorker({ workerId: id }), { phase: 'Paused' });
        assert.deepEqual(await p().resumeWorker({ workerId: id }), { phase: 'Running' });
        assert.deepEqual(await p().getWorkerStatus({ workerId: id }), { phase: 'Running' });
        assert.deepEqual(await p().resumeWorker({ workerId: id }), { phase: 'Running' });
        await terminate(id);
      });
    }

    if (has('worker.restart')) {
      it('restartWorker runs the worker again', { timeout }, async () => {
        const id = newId('restart');
        const marker = `restart-${id}`;
        await createRunning(id, target.longRunningSpec(marker));
        const worker = await p().restartWorker({ workerId: id });
        assert.equal(worker.workerId, id);
        assert.equal(worker.state.phase, 'Running');
        assert.deepEqual(await p().getWorkerStatus({ workerId: id }), { phase: 'Running' });
        await terminate(id);
      });
    }

    if (has('worker.secrets.refresh')) {
      const probe = (): NonNullable<ConformanceTarget['secretProbe']> => {
        assert.ok(has('worker.exec') && target.secretProbe !== undefined, 'the target must declare worker.exec and provide secretProbe to test worker.secrets.refresh');
        return target.secretProbe;
      };
      const read = async (id: string, command: string[]): Promise<string> => {
        const r = await p().executeCommand({ workerId: id, command });
        assert.equal(r.exitCode, 0, `${command.join(' ')} failed: ${r.stderr}`);
        return r.stdout;
      };
      const mounts = (tag: string, version: string): SecretMount[] => [
        { strategy: 'file', name: 'cf-file', version, path: 'cf/token', value: `file-${tag}-${version}` },
        { strategy: 'env', name: 'cf-env', version, envName: 'CF_SECRET', value: `env-${tag}-${version}` },
      ];

      it('refreshSecrets replaces file secrets in place and ignores env mounts', { timeout }, async () => {
        const probes = probe();
        const id = newId('refresh');
        const spec = target.longRunningSpec(`refresh-${id}`);
        created.add(id);
        await p().createWorker({ workerId: id, spec: { ...spec, labels: { ...spec.labels, ...labelsFor(id) } }, secrets: mounts(id, '1') });
        await untilRunning(id);
        assert.equal(await read(id, probes.file('cf/token')), `file-${id}-1`);
        const r = await p().refreshSecrets({ workerId: id, secrets: mounts(id, '2') });
        assert.deepEqual(r, { workerId: id, updated: 1 }, 'one file mount replaced; the env mount is not counted');
        assert.equal(await read(id, probes.file('cf/token')), `file-${id}-2`, 'the worker reads the new file content');
        assert.equal(await read(id, probes.env('CF_SECRET')), `env-${id}-1`, 'a running environment is left as it was');
        assert.deepEqual(await p().getWorkerStatus({ workerId: id }), { phase: 'Running' }, 'a refresh without a signal leaves the worker running');
        await terminate(id);
      });

      it('refreshSecrets with a signal delivers it to the worker (an unhandled SIGHUP ends it)', { timeout }, async () => {
        const id = newId('refreshsig');
        const spec = target.longRunningSpec(`refreshsig-${id}`);
        created.add(id);
        await p().createWorker({ workerId: id, spec: { ...spec, labels: { ...spec.labels, ...labelsFor(id) } }, secrets: mounts(id, '1') });
        await untilRunning(id);
        // Signal a command that is up, as a rotation does: a container's init drops a signal that comes before it has set
        // up forwarding (PID 1 ignores signals it has no handler for), and Running only says the init has started.
        if (has('worker.logs')) await logsContain(id, `refreshsig-${id}`);
        await p().refreshSecrets({ workerId: id, secrets: mounts(id, '2'), signal: 'SIGHUP' });
        await waitFor(async () => (isFinal(await p().getWorkerStatus({ workerId: id })) ? true : undefined), `${id} to end on SIGHUP`, settle);
        await expectCode(p().refreshSecrets({ workerId: id, secrets: mounts(id, '3') }), 'WM_ERR_CONFLICT', 'refreshSecrets of an ended worker');
        await terminate(id);
      });

      if (has('worker.restart')) {
        it('restartWorker with secrets starts the worker on the new env and file values', { timeout }, async () => {
          const probes = probe();
          const id = newId('restartsec');
          const spec = target.longRunningSpec(`restartsec-${id}`);
          created.add(id);
          await p().createWorker({ workerId: id, spec: { ...spec, labels: { ...spec.labels, ...labelsFor(id) } }, secrets: mounts(id, '1') });
          await untilRunning(id);
          const worker = await p().restartWorker({ workerId: id, secrets: mounts(id, '2') });
          assert.equal(worker.state.phase, 'Running');
          assert.equal(await read(id, probes.env('CF_SECRET')), `env-${id}-2`, 'the restarted worker has the new env value');
          assert.equal(await read(id, probes.file('cf/token')), `file-${id}-2`, 'and the new file content');
          await terminate(id);
        });
      }
    }

    if (has('worker.capacity')) {
      it('getCapacity reports consistent amounts and counts active workers', { timeout }, async () => {
        const before = await p().getCapacity({});
        for (const key of ['cpuMillicores', 'memoryMiB', 'gpu', 'storageMiB'] as const) {
          assert.ok(before.available[key] <= before.total[key], `available ${key} is within total`);
        }
        if (before.maxWorkers !== undefined) assert.ok(before.maxWorkers >= before.activeWorkers);
        const id = newId('cap');
        await createRunning(id, target.longRunningSpec(`cap-${id}`));
        assert.equal((await p().getCapacity({})).activeWorkers, before.activeWorkers + 1, 'a running worker is counted');
        await terminate(id);
        assert.equal((await p().getCapacity({})).activeWorkers, before.activeWorkers, 'a terminated worker is not counted');
      });
    }

    if (has('worker.events')) {
      it('emits lifecycle events: WorkerCreated, then WorkerTerminated after terminate', { timeout }, async () => {
        const events = session?.events;
        assert.ok(events !== undefined, 'the provider declares worker.events, so the session must expose events()');
        const id = newId('events');
        const worker = await create(id, target.longRunningSpec(`events-${id}`));
        const createdEvent = await waitFor(async () => events().find((e) => e.workerId === id && e.type === 'WorkerCreated'), `WorkerCreated for ${id}`, settle);
        if (createdEvent.type === 'WorkerCreated' && worker.providerRef !== undefined && createdEvent.providerRef !== undefined) {
          assert.equal(createdEvent.providerRef, worker.providerRef);
        }
        await terminate(id);
        await waitFor(async () => events().find((e) => e.workerId === id && e.type === 'WorkerTerminated'), `WorkerTerminated for ${id}`, settle);
        const mine = events().filter((e) => e.workerId === id);
        assert.equal(mine.filter((e) => e.type === 'WorkerCreated').length, 1, 'one WorkerCreated per worker');
        assert.equal(mine.filter((e) => e.type === 'WorkerTerminated').length, 1, 'one WorkerTerminated per worker');
      });
    }

    const shortSpec = target.shortSpec;
    if (shortSpec !== undefined) {
      it('a worker that exits 0 ends Terminated, one that exits non-zero ends Failed', { timeout }, async () => {
        const ok = newId('exit0');
        await create(ok, shortSpec(`bye-${ok}`, 0));
        const okState = await waitFor(async () => {
          const s = await p().getWorkerStatus({ workerId: ok });
          return isFinal(s) ? s : undefined;
        }, `${ok} to exit`, settle);
        assert.equal(okState.phase, 'Terminated');
        if (okState.phase === 'Terminated' && okState.exitCode !== undefined) assert.equal(okState.exitCode, 0);

        const bad = newId('exit3');
        await create(bad, shortSpec(`bye-${bad}`, 3));
        const badState = await waitFor(async () => {
          const s = await p().getWorkerStatus({ workerId: bad });
          return isFinal(s) ? s : undefined;
        }, `${bad} to exit`, settle);
        assert.equal(badState.phase, 'Failed');
        if (badState.phase === 'Failed') {
          assert.ok(badState.reason.length > 0);
          if (badState.exitCode !== undefined) assert.equal(badState.exitCode, 3);
        }
        await terminate(ok);
        await terminate(bad);
      });
    }
  });
}
