import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JetStreamEventBus, parseStreamsFile, type StreamsFile } from '../../host/src/bus/adapters/jetstream/index.ts';
import { createEvent, subjectsFor, type EventEnvelope } from '../../host/src/bus/index.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

const available = natsServerAvailable();
const subjects = subjectsFor('t');

const streams = async (): Promise<StreamsFile> => {
  const file = path.join(repoRoot, 'config/jetstream/streams.yaml');
  const parsed = parseStreamsFile(await readFile(file, 'utf8'), file, 't');
  // Short ack wait so that a crashed consumer's message comes back within the test.
  return { ...parsed, consumers: { ...parsed.consumers, ackWaitMs: 1_000, maxDeliver: 3 } };
};

const stateChanged = (workerId: string, n: number): EventEnvelope =>
  createEvent(subjects, 'host-t', 'workerStateChanged', { instance: 'a', type: 'WorkerStateChanged', workerId, timestamp: new Date().toISOString(), oldState: { phase: 'Pending' }, newState: { phase: 'Running' }, n }, { subject: workerId });
const nOf = (e: EventEnvelope): number => (e.data as { n: number }).n;

describe('JetStreamEventBus on a real nats-server', { skip: available.ok ? false : available.message }, () => {
  let nats: NatsServer;
  let dir: string;
  let defs: StreamsFile;
  const buses: JetStreamEventBus[] = [];
  const newBus = (name: string, extra: Partial<ConstructorParameters<typeof JetStreamEventBus>[0]> = {}): JetStreamEventBus => {
    const bus = new JetStreamEventBus({ servers: [nats.url], name, subjects, streams: defs, outboxFile: path.join(dir, `${name}.outbox.jsonl`), connectTimeoutMs: 30_000, ...extra });
    buses.push(bus);
    return bus;
  };

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-bus-'));
    defs = await streams();
  });
  after(async () => {
    await Promise.all(buses.map((b) => b.stop().catch(() => undefined)));
    await nats.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the streams from their definitions, publishes with ack and consumes with explicit ack', async () => {
    const bus = newBus('pubsub');
    const got: EventEnvelope[] = [];
    const sub = bus.subscribe('t.worker.state_changed', (e) => void got.push(e));
    await bus.start();
    await sub.ready;
    const sent = [stateChanged('w-a', 1), stateChanged('w-a', 2), stateChanged('w-a', 3)];
    for (const e of sent) await bus.publish(e);
    await waitFor(() => got.length === 3, '3 events');
    assert.deepEqual(got, sent);
    assert.equal(bus.stats().published, 3);

    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('WM_T_EVENTS');
      assert.deepEqual(info.config.subjects, ['t.worker.*', 't.secret.*', 't.security.>', 't.plugin.*']);
      assert.equal(info.config.duplicate_window, 120_000 * 1_000_000);
      assert.equal(info.config.max_age, 604_800_000 * 1_000_000);
      assert.equal(info.state.messages, 3);
      const consumers = await jsm.consumers.list('WM_T_EVENTS').next();
      assert.equal(consumers.length, 1);
      // Acks travel after the handlers ran; wait for the server to have them all.
      const ci = await waitFor(async () => {
        const info = await jsm.consumers.info('WM_T_EVENTS', consumers[0]?.name ?? '');
        return info.num_ack_pending === 0 && info.num_pending === 0 ? info : undefined;
      }, 'every event acked');
      assert.equal(ci.config.ack_policy, 'explicit');
    } finally {
      await nc.close();
    }
    sub.unsubscribe();
  });

  it('redelivers an event whose handler throws, before anything after it, then succeeds', async () => {
    const bus = newBus('retry');
    const seen: Array<[number, number]> = [];
    let failures = 0;
    const sub = bus.subscribe('t.worker.>', (e, d) => {
      seen.push([nOf(e), d.attempt]);
      if (nOf(e) === 1 && failures++ < 2) throw new Error('transient');
    });
    await bus.start();
    await sub.ready;
    await bus.publish(stateChanged('w-r', 1));
    await bus.publish(stateChanged('w-r', 2));
    await waitFor(() => seen.some(([n]) => n === 2), 'event 2');
    assert.deepEqual(seen, [[1, 1], [1, 2], [1, 3], [2, 1]]);
    assert.equal(bus.stats().redelivered, 2);
    sub.unsubscribe();
  });

  it('dead-letters an event after maxDeliver failed attempts, and moves on', async () => {
    const handlerErrors: string[] = [];
    const bus = newBus('dlq', { onHandlerError: (err, e) => handlerErrors.push(`${(err as Error).message}:${nOf(e)}`) });
    const dead: EventEnvelope[] = [];
    const ok: number[] = [];
    // Durable consumers start at the beginning of the stream: look only at this test's worker.
    const sub = bus.subscribe('t.worker.>', (e) => {
      if (e.subject !== 'w-d') return;
      if (nOf(e) === 1) throw new Error('poison');
      ok.push(nOf(e));
    }, { durable: 'poisoned' });
    const dlq = bus.subscribe('dlq.t.>', (e) => void dead.push(e));
    await bus.start();
    await Promise.all([sub.ready, dlq.ready]);
    const poison = stateChanged('w-d', 1);
    await bus.publish(poison);
    await bus.publish(stateChanged('w-d', 2));
    await waitFor(() => dead.length === 1 && ok.length === 1, () => `dead letter and next event ${JSON.stringify({ dead: dead.length, ok, stats: bus.stats(), handlerErrors })}`);
    assert.deepEqual(ok, [2]);
    const letter = dead[0] as EventEnvelope<{ consumer: string; deliveries: number; error: { message: string }; event: EventEnvelope }>;
    assert.equal(letter.busSubject, 'dlq.t.poisoned');
    assert.equal(letter.type, 'dev.worker-manager.bus.dead_letter');
    assert.equal(letter.causationid, poison.id);
    assert.equal(letter.data.deliveries, 3);
    assert.equal(letter.data.error.message, 'poison');
    assert.deepEqual(letter.data.event, poison);
    assert.deepEqual(handlerErrors, ['poison:1']);
    assert.equal(bus.stats().deadLettered, 1);
    sub.unsubscribe();
    dlq.unsubscribe();
  });

  it('redelivers to another process what a consumer that crashed (SIGKILL) never acknowledged', async () => {
    const streamsJson = path.join(dir, 'streams.json');
    await writeFile(streamsJson, JSON.stringify(defs));
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/fixtures/bus/crashingConsumer.ts'), nats.url, dir, streamsJson, 'crashy', 't.worker.failed'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
    // A child that compiles TypeScript: seconds idle, far more on a loaded machine.
    await waitFor(() => out.includes('ready'), 'crashing consumer ready', 90_000);
    const publisher = newBus('crash-pub');
    await publisher.start();
    const event = createEvent(subjects, 'host-t', 'workerFailed', { instance: 'a', type: 'WorkerFailed', workerId: 'w-c', timestamp: new Date().toISOString(), reason: 'oom' }, { subject: 'w-c' });
    await publisher.publish(event);
    assert.equal(await within(exited, 'the consumer to kill itself on the event'), 'SIGKILL');
    assert.match(out, /received/);

    const survivor = newBus('crash-survivor');
    const got: Array<[string, number]> = [];
    const sub = survivor.subscribe('t.worker.failed', (e, d) => void got.push([e.id, d.attempt]), { durable: 'crashy' });
    await survivor.start();
    await sub.ready;
    // ack_wait is 1 s in this test's definitions.
    await waitFor(() => got.length === 1, 'redelivery', 30_000);
    assert.deepEqual(got, [[event.id, 2]]);
    sub.unsubscribe();
  });

  it('drops a repeated event id (Nats-Msg-Id within the duplicate window), also from another publisher', async () => {
    const a = newBus('dup-a');
    const b = newBus('dup-b');
    const got: string[] = [];
    const sub = a.subscribe('t.plugin.*', (e) => void got.push(e.id));
    await Promise.all([a.start(), b.start()]);
    await sub.ready;
    const event = createEvent(subjects, 'host-t', 'pluginCrashed', { instance: 'x', plugin: 'p', version: '1.0.0', state: 'crashed' });
    await a.publish(event);
    await b.publish(event);
    await a.publish(structuredClone(event));
    const marker = createEvent(subjects, 'host-t', 'pluginCrashed', { instance: 'y', plugin: 'p', version: '1.0.0', state: 'crashed' });
    await b.publish(marker);
    // The barrier: the repeats were answered (as duplicates) before the marker was published, and the consumer handles
    // the stream in order, so any copy of them the stream held would have reached it before the marker.
    await waitFor(() => got.includes(marker.id), 'marker');
    assert.deepEqual(got, [event.id, marker.id]);
    assert.equal(a.stats().duplicates + b.stats().duplicates, 2);
  });

  it('delivers the events of each worker in order while many are in flight', async () => {
    const bus = newBus('order');
    const got = new Map<string, number[]>();
    const sub = bus.subscribe('t.worker.state_changed', (e) => {
      const list = got.get(e.subject ?? '') ?? [];
      list.push(nOf(e));
      got.set(e.subject ?? '', list);
    });
    await bus.start();
    await sub.ready;
    const workers = ['w-o1', 'w-o2', 'w-o3', 'w-o4', 'w-o5'];
    const sends: Promise<void>[] = [];
    for (let n = 0; n < 60; n++) for (const w of workers) sends.push(bus.publish(stateChanged(w, n)));
    await Promise.all(sends);
    await waitFor(() => workers.every((w) => got.get(w)?.length === 60), 'all events', 60_000);
    for (const w of workers) assert.deepEqual(got.get(w), [...Array(60).keys()], w);
    sub.unsubscribe();
  });

  it('keeps events in the outbox while nats-server is down, answers publishers at once, and flushes when it is back', async () => {
    // A long publish deadline: a publisher that waited for the server instead of the outbox would take that long.
    const bus = newBus('outbox', { publishTimeoutMs: 60_000, reconnectWaitMs: 100 });
    const got: number[] = [];
    const sub = bus.subscribe('t.worker.>', (e) => void (e.subject === 'w-x' && got.push(nOf(e))), { durable: 'outbox-reader' });
    await bus.start();
    await sub.ready;
    await bus.publish(stateChanged('w-x', 0));
    await waitFor(() => got.length === 1, 'first event');
    await nats.stop();
    await waitFor(() => !bus.stats().connected, 'disconnect noticed');
    const times: number[] = [];
    for (let n = 1; n <= 50; n++) {
      const t0 = performance.now();
      await bus.publish(stateChanged('w-x', n));
      times.push(performance.now() - t0);
    }
    const outboxFile = path.join(dir, 'outbox.outbox.jsonl');
    assert.equal(bus.stats().outbox.depth, 50);
    assert.ok(bus.stats().outbox.oldestAgeMs >= 0);
    assert.equal((await readFile(outboxFile, 'utf8')).trim().split('\n').length, 50);
    // Expected: an append and an fdatasync (ms); failure: the 60 s publish deadline. The bound leaves room for load.
    assert.ok(Math.max(...times) < budget(10_000), `publish while down took up to ${Math.max(...times).toFixed(1)} ms`);
    await nats.restart();
    await waitFor(() => got.length === 51, 'flushed events', 60_000);
    assert.deepEqual(got, [...Array(51).keys()]);
    await waitFor(() => bus.stats().outbox.depth === 0, 'outbox empty');
    sub.unsubscribe();
  });

  it('replays the outbox a stopped host left behind, at the next start', async () => {
    const outboxFile = path.join(dir, 'replay.outbox.jsonl');
    const first = newBus('replay-1', { outboxFile, drainTimeoutMs: 200 });
    await first.start();
    await nats.stop();
    await waitFor(() => !first.stats().connected, 'disconnect noticed');
    const sent = [1, 2, 3].map((n) => stateChanged('w-y', n));
    for (const e of sent) await first.publish(e);
    await first.stop();
    assert.equal((await readFile(outboxFile, 'utf8')).trim().split('\n').length, 3);

    await nats.restart();
    const second = newBus('replay-2', { outboxFile });
    const got: EventEnvelope[] = [];
    const sub = second.subscribe('t.worker.>', (e) => void got.push(e), { durable: 'replay-reader' });
    await second.start();
    await sub.ready;
    // The reader is durable with deliver-all: it sees what the stream holds, including the replayed events.
    await waitFor(() => sent.every((e) => got.some((g) => g.id === e.id)), 'replayed events', 60_000);
    assert.deepEqual(got.filter((g) => g.subject === 'w-y').map(nOf), [1, 2, 3]);
    assert.equal(second.stats().outbox.depth, 0);
    sub.unsubscribe();
  });

  it('fails to start with HOST_ERR_BUS_UNAVAILABLE when no server answers, within connectTimeoutMs', async () => {
    const bus = newBus('nowhere', { servers: ['nats://127.0.0.1:1'], connectTimeoutMs: 400, reconnectWaitMs: 50 });
    const t0 = performance.now();
    await assert.rejects(bus.start(), { code: 'HOST_ERR_BUS_UNAVAILABLE' });
    // Expected: about 400 ms (every attempt is refused at once); the failure this tells apart is the 10 s default. The
    // bound is not scaled by WM_TEST_TIME_FACTOR: above that default it could no longer fail.
    const took = performance.now() - t0;
    assert.ok(took < 8_000, `start gave up after ${took.toFixed(0)} ms`);
  });

  it('authenticates with credentials named by environment variable, and never echoes the secret', async () => {
    const secured = await startNatsServer({ args: ['--auth', 's3cret-token'] });
    try {
      const ok = newBus('auth-ok', { servers: [secured.url], credentials: { tokenEnv: 'WM_TEST_NATS_TOKEN' }, env: { WM_TEST_NATS_TOKEN: 's3cret-token' } });
      await ok.start();
      await ok.publish(stateChanged('w-auth', 1));
      assert.equal(ok.stats().published, 1);
      await ok.stop();
      const missing = newBus('auth-missing', { servers: [secured.url], credentials: { tokenEnv: 'WM_TEST_NATS_TOKEN' }, env: {} });
      await assert.rejects(missing.start(), { code: 'HOST_ERR_CONFIG_ENV_MISSING' });
      const wrong = newBus('auth-wrong', { servers: [secured.url], connectTimeoutMs: 300, credentials: { tokenEnv: 'WM_TEST_NATS_TOKEN' }, env: { WM_TEST_NATS_TOKEN: 'not-it-xyz' } });
      await assert.rejects(wrong.start(), (err: unknown) => {
        assert.equal((err as { code?: string }).code, 'HOST_ERR_BUS_UNAVAILABLE');
        assert.doesNotMatch(JSON.stringify({ m: (err as Error).message, d: (err as { details?: unknown }).details }), /not-it-xyz|s3cret/);
        return true;
      });
    } finally {
      await secured.dispose();
    }
  });
});
