import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamCommandClient, readCommandRecord, resultSubject } from '../../host/src/bus/adapters/jetstream/index.ts';
import { subjectsFor, workerIdForKey, type CommandReply, type WorkerCommand } from '../../host/src/bus/index.ts';
import { natsServerAvailable, startNatsServer, type NatsServer } from '../helpers/natsServer.ts';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';

const available = natsServerAvailable();
const subjects = subjectsFor('cmd');
const RESULTS = 'WM_CMD_COMMAND_RESULTS';
// The killed-replica test has streams of its own (another prefix): a short command ack wait there lets the dead
// replica's command move on within the test, while elsewhere the shipped one (30 s) keeps a healthy replica that a
// loaded machine stalls for a second from losing its command to the other replica.
const DYING = 'dying';
const DYING_RESULTS = 'WM_DYING_COMMAND_RESULTS';
/** Budget of a command's reply: a create through a plugin thread on a loaded machine can take seconds. */
const REPLY_MS = budget(60_000);

const hostYaml = (id: string, stateDir: string, natsUrl: string, streamsFile: string, prefix = 'cmd'): string => `
host: { id: ${id}, stateDir: ${stateDir}, logLevel: warn }
bus:
  adapter: jetstream
  subjectPrefix: ${prefix}
  serveCommands: true
  jetstream: { servers: ["${natsUrl}"], streamsFile: ${streamsFile}, connectTimeoutMs: 30000, reconnectWaitMs: 100 }
# These commands carry no token: they run as the host's service identity.
security: { authentication: { serviceIdentity: { commands: true } } }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${process.env['PATH'] ?? '/usr/bin:/bin'}" }
instances:
  - { name: a, plugin: process, default: true, config: { maxWorkers: 50 } }
`;

const create = (key: string): WorkerCommand => ({ operation: 'create', idempotencyKey: key, params: { spec: { command: ['sleep', '600'] } } });
type Created = { instance: string; worker: { workerId: string; providerRef?: string } };
const okResult = <T>(reply: CommandReply): T => {
  assert.ok(reply.ok, `command failed: ${JSON.stringify(reply)}`);
  return reply.result as T;
};

describe('Worker commands over JetStream', { skip: available.ok ? false : available.message }, () => {
  let nats: NatsServer;
  let dir: string;
  const streamsFile = path.join(repoRoot, 'config/jetstream/streams.yaml');
  let shortAckStreamsFile: string;
  let nc: NatsConnection;
  let client: JetStreamCommandClient;

  /**
   * A host state dir of its own (its lock, admin token, journals) whose `instances` folder is `shared`: the process
   * provider's state is the stand-in for the infrastructure replicas share in production, so that either replica can
   * act on a worker the other created.
   */
  async function replicaState(name: string, shared: string): Promise<string> {
    const state = path.join(dir, name);
    await mkdir(state, { recursive: true });
    await mkdir(shared, { recursive: true });
    await symlink(shared, path.join(state, 'instances'));
    return state;
  }

  before(async () => {
    nats = await startNatsServer();
    dir = await mkdtemp(path.join(os.tmpdir(), 'wm-cmd-'));
    // The shipped definitions, with a short command ack wait so that a dead replica's command moves on within the test.
    const shipped = await readFile(streamsFile, 'utf8');
    const short = shipped.replace(/commandAckWaitMs: \d+/, 'commandAckWaitMs: 1000');
    assert.notEqual(short, shipped);
    shortAckStreamsFile = path.join(dir, 'streams-short-ack.yaml');
    await writeFile(shortAckStreamsFile, short);
    nc = await connect({ servers: nats.url });
    client = new JetStreamCommandClient(nc, { subjects, resultsStream: RESULTS });
  });
  after(async () => {
    await nc?.close();
    await nats?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  describe('with two host replicas', () => {
    let a: TestHost;
    let b: TestHost;
    before(async () => {
      const shared = path.join(dir, 'replicas-instances');
      [a, b] = await Promise.all([
        replicaState('replica-a-state', shared).then((state) => startTestHost(hostYaml('replica-a', state, nats.url, streamsFile))),
        replicaState('replica-b-state', shared).then((state) => startTestHost(hostYaml('replica-b', state, nats.url, streamsFile))),
      ]);
    });
    after(async () => {
      await a?.stop();
      await b?.stop();
    });

    it('handles each command on exactly one replica, and answers a repeated command with its first result', async () => {
      const keys = Array.from({ length: 12 }, (_, i) => `order-${i}`);
      const replies = await Promise.all(keys.map((k) => client.send(create(k), { timeoutMs: REPLY_MS })));
      const created = replies.map((r) => okResult<Created>(r));
      assert.deepEqual(created.map((c) => c.worker.workerId), keys.map(workerIdForKey));
      // Each worker exists once (a second create of the same id would have failed or made a second process).
      const listed = new Set([...(await a.host.workers.listWorkers()), ...(await b.host.workers.listWorkers())].map((w) => w.worker.workerId));
      assert.deepEqual([...listed].sort(), keys.map(workerIdForKey).sort(), 'every command ran');
      const ranOn = (t: TestHost): number => t.logs.filter((l) => l.includes('"op":"createWorker"')).length;
      assert.equal(ranOn(a) + ranOn(b), keys.length, 'each create ran on exactly one replica');
      console.log(JSON.stringify({ commands: keys.length, ranOnA: ranOn(a), ranOnB: ranOn(b) }));

      const again = okResult<Created>(await client.send(create('order-3'), { timeoutMs: REPLY_MS }));
      assert.deepEqual(again, created[3]);
      assert.equal(ranOn(a) + ranOn(b), keys.length, 'the repeat was answered from the first result, not run');

      // Terminate over the bus answers; process workers are local to the host that started them, so a replica that
      // does not own one answers alreadyGone, and each host then cleans up its own.
      const term = await client.send({ operation: 'terminate', idempotencyKey: 'term-order-0', params: { workerId: workerIdForKey('order-0'), gracePeriodMs: 500 } }, { timeoutMs: REPLY_MS });
      assert.equal(term.ok, true);
      for (const t of [a, b]) for (const w of await t.host.workers.listWorkers()) await t.host.workers.terminateWorker(w.worker.workerId, { gracePeriodMs: 500 });
    });

    it('replies with the API error codes', async () => {
      const missing = await client.send({ operation: 'status', idempotencyKey: 'status-nope', params: { workerId: 'w-nope' } }, { timeoutMs: REPLY_MS });
      assert.equal(missing.ok, false);
      assert.equal(missing.ok === false && missing.error.code, 'WM_ERR_NOT_FOUND');
      const invalid = await client.send({ operation: 'exec', idempotencyKey: 'exec-bad', params: { workerId: 'w-1' } }, { timeoutMs: REPLY_MS });
      assert.equal(invalid.ok === false && invalid.error.code, 'WM_ERR_VALIDATION');
      const capacity = okResult<Array<{ instance: string }>>(await client.send({ operation: 'capacity', idempotencyKey: 'cap-1', params: {} }, { timeoutMs: REPLY_MS }));
      assert.deepEqual(capacity.map((c) => c.instance), ['a']);
    });
  });

  it('a replica killed in the middle of a create loses nothing, and the worker is not created twice', async () => {
    // Both replicas see one process-provider state folder: the stand-in for shared infrastructure.
    const shared = path.join(dir, 'dying-instances');
    const configA = path.join(dir, 'replica-a.yaml');
    await writeFile(configA, hostYaml('dying-a', await replicaState('dying-a-state', shared), nats.url, shortAckStreamsFile, DYING));
    const dyingClient = new JetStreamCommandClient(nc, { subjects: subjectsFor(DYING), resultsStream: DYING_RESULTS });
    const jsm = await jetstreamManager(nc);
    const recordState = async (key: string): Promise<string | undefined> => (await readCommandRecord(jsm, DYING_RESULTS, resultSubject(DYING, key)))?.state;
    let child: ChildProcess | undefined;
    let b: TestHost | undefined;
    try {
      child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'host/src/cli/main.ts'), 'serve', '--config', configA], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
      // A host started by the CLI compiles TypeScript and loads a plugin thread: 30 s and more on a loaded machine.
      await waitFor(() => out.includes('started (bus: jetstream)'), () => `replica A to start; output:\n${out}`, 90_000);
      const key = 'dying-create';
      const workerId = workerIdForKey(key);
      const meta = path.join(shared, 'a', 'workers', workerId, 'meta.json');
      // The reply waits for A to be killed, B to start (seconds, far more on a loaded machine) and A's ack wait to run out.
      const pending = dyingClient.send(create(key), { timeoutMs: budget(180_000) });
      pending.catch(() => undefined);
      // A has claimed the key: it is now running the create. Freeze it there, then kill it.
      await waitFor(async () => (await recordState(key)) === 'running', 'replica A to claim the command', 30_000, 1);
      child.kill('SIGSTOP');
      child.kill('SIGKILL');
      await within(exited, 'the killed replica A to exit');
      const startedByA = existsSync(meta) ? String((JSON.parse(await readFile(meta, 'utf8')) as { pid: number }).pid) : undefined;
      assert.equal(await recordState(key), 'running', 'A was stopped before it stored a result');

      // B starts only now, so the command can only have been with A; B gets it once A's ack wait (1 s) runs out.
      b = await startTestHost(hostYaml('survivor-b', await replicaState('survivor-b-state', shared), nats.url, shortAckStreamsFile, DYING));
      const reply = await pending;
      const worker = okResult<Created>(reply);
      assert.equal(worker.worker.workerId, workerId);
      // If A got as far as starting the process, B must hand back that very worker rather than start another.
      if (startedByA !== undefined) assert.equal(worker.worker.providerRef, startedByA);
      console.log(JSON.stringify({ killedMidCreate: true, workerStartedByKilledReplica: startedByA !== undefined }));
      const listed = (await b.host.workers.listWorkers()).filter((w) => w.worker.workerId === workerId);
      assert.equal(listed.length, 1);
      assert.equal(await recordState(key), 'done');
      // A repeat gets the same first result.
      assert.deepEqual(await dyingClient.send(create(key), { timeoutMs: REPLY_MS }), reply);
      await b.host.workers.terminateWorker(workerId, { gracePeriodMs: 500 });
    } finally {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await b?.stop();
    }
  });

  it('a command found claimed by a replica that died after creating the worker returns that worker instead of creating another', async () => {
    const replica = await startTestHost(hostYaml('recovering', '${DIR}/state', nats.url, streamsFile));
    try {
      const key = 'claimed-by-the-dead';
      const workerId = workerIdForKey(key);
      // What a replica that died between creating and recording leaves behind: the worker, and its claim.
      const first = await replica.host.workers.createWorker({ workerId, spec: { command: ['sleep', '600'] } });
      const js = jetstream(nc);
      await js.publish(resultSubject('cmd', key), JSON.stringify({ state: 'running', replica: 'dead', at: new Date().toISOString() }), { expect: { lastSubjectSequence: 0 } });
      const reply = await client.send(create(key), { timeoutMs: REPLY_MS });
      const got = okResult<Created>(reply);
      assert.equal(got.worker.workerId, workerId);
      assert.equal(got.worker.providerRef, first.worker.providerRef);
      assert.equal((await replica.host.workers.listWorkers()).length, 1);
      // exec is not repeatable: after an unknown outcome it is refused with a conflict, not run again.
      const execKey = 'exec-claimed-by-the-dead';
      await js.publish(resultSubject('cmd', execKey), JSON.stringify({ state: 'running', replica: 'dead', at: new Date().toISOString() }), { expect: { lastSubjectSequence: 0 } });
      const exec = await client.send({ operation: 'exec', idempotencyKey: execKey, params: { workerId, command: ['true'] } }, { timeoutMs: REPLY_MS });
      assert.equal(exec.ok === false && exec.error.code, 'WM_ERR_CONFLICT');
      await replica.host.workers.terminateWorker(workerId, { gracePeriodMs: 500 });
    } finally {
      await replica.stop();
    }
  });
});
