import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { hostStarted, serveHost, type HostApi, type ServedHost } from './servedHost.ts';
import { waitFor, within } from './waitFor.ts';

/**
 * The worker-ledger fault test (SIGKILL the host in the middle of creating workers through the API, restart it, and
 * check that the ledger and the infrastructure agree), shared by the process and the Docker provider. Each provider
 * says how to see what its infrastructure runs and what it leaves behind; everything else goes through the API of a
 * real `wm serve` process.
 */
export interface LedgerCrashScenario {
  hostId: string;
  /** The test's own folder: the config and the host's state dir are made here. */
  dir: string;
  /** The `plugins:` and `instances:` YAML of one default provider instance. */
  providerYaml: string;
  /** The spec of create `i`; its retry sends the same body again (a different one would be a 409). */
  spec: (i: number) => Record<string, unknown>;
  /** Creates to make (keys `k-0` ... `k-<count-1>`). */
  count: number;
  /** Creates in flight at once. */
  concurrency: number;
  /** The host is SIGKILLed the moment this many creates were acknowledged, with the others still in flight. */
  killAfterAcks: number;
  /**
   * Aims the kill at a window: from `killAfterAcks` acknowledgements on, the host is SIGKILLed as soon as this says
   * true (polled while the creates go on), or, if it never does, once all but `2 * concurrency` creates were
   * acknowledged, so that creates are still in flight.
   */
  killWhen?: () => Promise<boolean>;
  /**
   * What the infrastructure holds right now: worker id to the state of each incarnation it has for that id
   * (`running` for one that runs). Two entries for one id are two processes or containers for one worker.
   */
  infrastructure(): Promise<Map<string, string[]>>;
  /** What is left once every worker was terminated, one readable line per thing; empty when nothing is. */
  leftovers(): Promise<string[]>;
  /** Told, once the restarted host agrees with the infrastructure, what the crash left (records by phase, reconciliation). */
  log?(line: string): void;
}

/** Numbers the test reports. */
export interface LedgerCrashReport {
  acknowledgedBeforeKill: number;
  acknowledged: number;
  inFlightAtKill: number;
  /** What triggered the kill: the acknowledgement count, the `killWhen` condition, or its fallback. */
  killedBy: 'acks' | 'condition' | 'fallback';
  neverSent: number;
  recordsAfterRestart: Record<string, number>;
  infrastructureAfterRestart: number;
  createdOnRetry: number;
  liveAfterRetry: number;
  ms: Record<string, number>;
}

const TERMINAL = new Set(['Terminated', 'Failed']);
/** A phase's budget: it bounds a hang, so it is sized for a loaded 2-core machine, not for the expected time. */
const PHASE_MS = 240_000;

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function call(api: HostApi, method: string, pathname: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const res = await fetch(`${api.url}${pathname}`, {
    method,
    headers: { ...api.headers, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

/** The worker id of a create's answer, in the API's current shape (`workerId`) or the former one (`worker.workerId`). */
function workerIdOf(body: Record<string, unknown>): string | undefined {
  const direct = body['workerId'];
  if (typeof direct === 'string') return direct;
  const nested = (body['worker'] as { workerId?: unknown } | undefined)?.workerId;
  return typeof nested === 'string' ? nested : undefined;
}

/** Every record of the ledger (all pages): worker id to phase. */
async function ledger(api: HostApi): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
    const reply = await call(api, 'GET', `/v1/workers?limit=500${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
    assert.equal(reply.status, 200, `listing the ledger: ${JSON.stringify(reply.body)}`);
    const page = reply.body as { items: Array<{ worker: { workerId: string }; phase: string }>; nextCursor?: string };
    for (const item of page.items) {
      assert.equal(out.has(item.worker.workerId), false, `the listing returned ${item.worker.workerId} twice`);
      out.set(item.worker.workerId, item.phase);
    }
    cursor = page.nextCursor;
  }
  return out;
}

/** Runs `task` over `items` with at most `concurrency` at once; `stop()` true ends the pool before the next item. */
async function pool<T>(items: readonly T[], concurrency: number, task: (item: T) => Promise<void>, stop: () => boolean = () => false): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stop() && next < items.length) await task(items[next++] as T);
    }),
  );
}

function count(values: Iterable<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/**
 * What is wrong between the ledger and the infrastructure: a worker that runs without a live record, two incarnations
 * of one worker, a live record whose worker does not run.
 */
function disagreements(records: ReadonlyMap<string, string>, infra: ReadonlyMap<string, string[]>): string[] {
  const problems: string[] = [];
  for (const [id, states] of infra) {
    if (states.length > 1) problems.push(`${id}: the infrastructure holds ${states.length} incarnations (${states.join(', ')})`);
    const phase = records.get(id);
    if (phase === undefined) problems.push(`${id}: the infrastructure holds it (${states.join(', ')}) but the ledger has no record`);
    else if (TERMINAL.has(phase)) problems.push(`${id}: the infrastructure holds it (${states.join(', ')}) but its record is ${phase}`);
  }
  for (const [id, phase] of records) {
    if (TERMINAL.has(phase)) continue;
    if (!(infra.get(id) ?? []).includes('running')) problems.push(`${id}: its record is ${phase} but the infrastructure runs ${infra.has(id) ? (infra.get(id) ?? []).join(', ') : 'nothing'} for it`);
  }
  return problems;
}

/** The lines of the hosts' output about the workers named at the start of each problem (for a failure message). */
function logsAbout(problems: readonly string[], hosts: readonly ServedHost[]): string {
  const ids = new Set(problems.map((p) => p.split(':')[0] ?? '').filter((id) => id.startsWith('w-')));
  if (ids.size === 0) return '';
  const lines = hosts.flatMap((h, i) =>
    h
      .output()
      .split('\n')
      .filter((l) => l.includes('reconciled the worker ledger') || [...ids].some((id) => l.includes(id)))
      .map((l) => `[host ${i + 1}] ${l}`),
  );
  return `what the hosts logged about them:\n${lines.join('\n')}`;
}

/**
 * The fault test. Phases: creates through the API with Idempotency-Keys, SIGKILL after `killAfterAcks`
 * acknowledgements; restart on the same state dir; the ledger and the infrastructure agree; every key is retried
 * (acknowledged keys return their worker, and no key gets a second one); everything is terminated and nothing is left.
 */
export async function runLedgerCrash(t: TestContext, s: LedgerCrashScenario): Promise<LedgerCrashReport> {
  const stateDir = path.join(s.dir, 'state');
  const config = path.join(s.dir, 'wm.yaml');
  // logLevel info: the API's address (port 0) is only in the host's 'api listening' line.
  await writeFile(config, `host: { id: ${s.hostId}, stateDir: ./state, logLevel: info }\napi: { enabled: true, port: 0 }\n${s.providerYaml}`);
  const keys = Array.from({ length: s.count }, (_, i) => `k-${i}`);
  const bodies = new Map(keys.map((key, i) => [key, { spec: s.spec(i) }]));
  const create = (api: HostApi, key: string): Promise<Reply> => call(api, 'POST', '/v1/workers?wait=running', { body: bodies.get(key), headers: { 'idempotency-key': key } });
  const ms: Record<string, number> = {};
  let phaseStart = performance.now();
  const lap = (name: string): void => {
    const now = performance.now();
    ms[name] = Math.round(now - phaseStart);
    phaseStart = now;
  };

  // 1. Creates until the kill.
  const first = serveHost(t, config);
  const api1 = await hostStarted(first, s.hostId, stateDir);
  lap('firstStart');
  const acked = new Map<string, string>();
  const sent = new Set<string>();
  const refused: string[] = [];
  let killed = false;
  let inFlight = 0;
  let inFlightAtKill = -1;
  let ackedBeforeKill = 0;
  let killedBy: LedgerCrashReport['killedBy'] = 'acks';
  let host: ServedHost = first;
  const kill = (by: LedgerCrashReport['killedBy']): void => {
    if (killed) return;
    killed = true;
    killedBy = by;
    ackedBeforeKill = acked.size;
    inFlightAtKill = inFlight;
    host.child.kill('SIGKILL');
  };
  let creating = true;
  let aiming: Promise<void> | undefined;
  const aim = async (condition: () => Promise<boolean>): Promise<void> => {
    while (!killed && creating) {
      if (await condition().catch(() => false)) kill('condition');
      // Polling for a short-lived state is the fault injection itself, not a wait for a result.
      else await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  await within(
    pool(keys, s.concurrency, async (key) => {
      sent.add(key);
      inFlight++;
      let reply: Reply | undefined;
      try {
        reply = await create(api1, key);
      } catch {
        // The connection died with the host: not acknowledged.
      } finally {
        inFlight--;
      }
      if (reply === undefined) return;
      const id = workerIdOf(reply.body);
      if (reply.status < 200 || reply.status >= 300 || id === undefined) {
        refused.push(`${key}: ${reply.status} ${JSON.stringify(reply.body)}`);
        return;
      }
      acked.set(key, id);
      if (acked.size < s.killAfterAcks) return;
      if (s.killWhen === undefined) kill('acks');
      else if (acked.size >= s.count - 2 * s.concurrency) kill('fallback');
      else aiming ??= aim(s.killWhen);
    }, () => killed || refused.length > 0).finally(() => (creating = false)),
    () => `the creates up to the kill (${acked.size} acknowledged); output:\n${host.output()}`,
    PHASE_MS,
  );
  await aiming;
  assert.deepEqual(refused, [], 'no create was refused before the kill');
  assert.ok(killed, `the host was killed (${acked.size} of ${s.count} acknowledged)`);
  assert.ok(inFlightAtKill > 0, 'creates were in flight when the host was killed');
  await within(host.closed, 'the SIGKILLed host to be reaped');
  lap('createsUntilKill');

  // 2. Restart on the same state dir: the next host takes over the stale lock and reconciles before it says started.
  host = serveHost(t, config);
  const api = await hostStarted(host, s.hostId, stateDir);
  lap('restart');
  // A provider may carry on a create it had accepted (a pull, a container to start) after the restart: the two must
  // come to agree, and a worker without a record, a record without a worker or a second incarnation never does.
  let records = new Map<string, string>();
  let infra = new Map<string, string[]>();
  let afterRestart: string[] = [];
  await waitFor(async () => {
    records = await ledger(api);
    infra = await s.infrastructure();
    afterRestart = disagreements(records, infra);
    return afterRestart.length === 0;
  }, () => `the ledger and the infrastructure to agree after the restart; they disagree:\n${afterRestart.join('\n')}\n${logsAbout(afterRestart, [first, host])}`, 60_000, 250);
  const reconciled = host.output().split('\n').filter((l) => l.includes('reconciled the worker ledger with the provider'));
  s.log?.(`after restart: ${records.size} records ${JSON.stringify(count(records.values()))}; the infrastructure holds ${infra.size} workers; ${reconciled.join(' ') || 'nothing reconciled'}`);
  for (const [key, id] of acked) {
    const phase = records.get(id);
    assert.ok(phase !== undefined && !TERMINAL.has(phase), `acknowledged ${key} (${id}) is ${phase ?? 'not in the ledger'} after the restart`);
  }

  // 3. The client retries every create, acknowledged or not, with its original key.
  const byKey = new Map<string, string>();
  const retryFailures: string[] = [];
  await within(
    pool(keys, s.concurrency, async (key) => {
      const reply = await create(api, key);
      const id = workerIdOf(reply.body);
      if (reply.status >= 200 && reply.status < 300 && id !== undefined) byKey.set(key, id);
      else retryFailures.push(`${key}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }),
    () => `the retries (${byKey.size} of ${keys.length} answered); output:\n${host.output()}`,
    PHASE_MS,
  );
  lap('retries');
  assert.deepEqual(retryFailures, [], 'every retry succeeded');
  const changed = [...acked].filter(([key, id]) => byKey.get(key) !== id).map(([key, id]) => `${key}: acknowledged ${id}, retry answered ${byKey.get(key) ?? 'nothing'}`);
  assert.deepEqual(changed, [], 'a retry of an acknowledged create returns the acknowledged worker');
  const keyIds = new Set(byKey.values());
  assert.equal(keyIds.size, keys.length, 'every key has a worker of its own');
  let afterRetry = new Map<string, string>();
  let live: string[] = [];
  let retryProblems: string[] = [];
  await waitFor(async () => {
    afterRetry = await ledger(api);
    live = [...afterRetry].filter(([, phase]) => !TERMINAL.has(phase)).map(([id]) => id);
    retryProblems = [
      ...disagreements(afterRetry, await s.infrastructure()),
      ...live.filter((id) => !keyIds.has(id)).map((id) => `${id}: a live worker no key answered (a duplicate)`),
      ...[...keyIds].filter((id) => !live.includes(id)).map((id) => `${id}: a key's worker is ${afterRetry.get(id) ?? 'not in the ledger'}`),
    ];
    return retryProblems.length === 0;
  }, () => `one running worker per key after the retries; found:\n${retryProblems.join('\n')}\n${logsAbout(retryProblems, [first, host])}`, 60_000, 250);
  assert.equal(live.length, keys.length, '0 duplicates: one live worker per key');

  // 4. Terminate everything; nothing is left.
  const terminateFailures: string[] = [];
  await within(
    pool(live, s.concurrency, async (id) => {
      const reply = await call(api, 'DELETE', `/v1/workers/${id}?gracePeriodMs=1000`);
      if (reply.status < 200 || reply.status >= 300) terminateFailures.push(`${id}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }),
    () => `terminating ${live.length} workers; output:\n${host.output()}`,
    PHASE_MS,
  );
  assert.deepEqual(terminateFailures, [], 'every terminate succeeded');
  let stillLive: string[] = [];
  await waitFor(async () => {
    stillLive = [...(await ledger(api))].filter(([, phase]) => !TERMINAL.has(phase)).map(([id, phase]) => `${id}: ${phase}`);
    return stillLive.length === 0;
  }, () => `every record to be final after the terminates; still live:\n${stillLive.join('\n')}`, 60_000, 250);
  // What a provider removes in the background (the Docker provider's orphan cleanup) gets its time; a leak never goes.
  let left: string[] = [];
  await waitFor(async () => {
    const infraLeft = await s.infrastructure();
    left = [...[...infraLeft].map(([id, states]) => `worker ${id}: ${states.join(', ')}`), ...(await s.leftovers())];
    return left.length === 0;
  }, () => `nothing to be left after terminating every worker; left:\n${left.join('\n')}`, 120_000, 250);
  lap('terminateAll');

  return {
    acknowledgedBeforeKill: ackedBeforeKill,
    acknowledged: acked.size,
    inFlightAtKill,
    killedBy,
    neverSent: keys.length - sent.size,
    recordsAfterRestart: count(records.values()),
    infrastructureAfterRestart: infra.size,
    createdOnRetry: [...byKey].filter(([key]) => !acked.has(key)).length,
    liveAfterRetry: live.length,
    ms,
  };
}
