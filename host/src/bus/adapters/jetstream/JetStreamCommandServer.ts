import { AckPolicy, DeliverPolicy, JetStreamApiError, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { Compile } from 'typebox/compile';
import { toWorkerManagerError, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { idempotencyToken, WorkerCommand, type CommandReply } from '../../commands/workerCommand.ts';
import type { CommandExecutor, Subscription } from '../../EventBus.ts';
import type { JetStreamEventBus } from './JetStreamEventBus.ts';
import type { StreamDefinition } from './streamDefinitions.ts';

/** Header naming the inbox a command's reply goes to. */
export const REPLY_TO_HEADER = 'Wm-Reply-To';
/** Durable consumer every replica shares on the commands work queue. */
export const COMMAND_CONSUMER = 'wm-commands';

/** What the results stream holds for one idempotency key: a claim while a replica runs it, then the first result. */
export type CommandRecord = { state: 'running'; replica: string; at: string } | { state: 'done'; reply: CommandReply };

const checkCommand = Compile(WorkerCommand);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Subject of the record of one idempotency key. */
export function resultSubject(prefix: string, key: string): string {
  return `${prefix}.worker.cmdresult.${idempotencyToken(key)}`;
}

/** Reads the record of a key, or undefined. */
export async function readCommandRecord(jsm: JetStreamManager, stream: string, subject: string): Promise<CommandRecord | undefined> {
  try {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    return m === null ? undefined : (JSON.parse(decoder.decode(m.data)) as CommandRecord);
  } catch (error) {
    if (error instanceof JetStreamApiError && (error.code === 10037 || error.status === 404)) return undefined;
    throw error;
  }
}

/**
 * Serves worker commands. Exactly once from the caller's point of view, across replicas and crashes:
 *
 * 1. The commands stream is a work queue read through one durable consumer shared by all replicas, so a command is
 *    with one replica at a time; `Nats-Msg-Id` = idempotency key keeps a repeat within the duplicate window out of the
 *    queue altogether.
 * 2. Before running, a replica claims the key on the results stream with `Nats-Expected-Last-Subject-Sequence: 0`,
 *    a compare-and-set only one replica can win. When the command is done, the result replaces the claim.
 * 3. A replica that finds a result replies with it (a repeated command returns the first result). One that finds
 *    another replica's claim got the command because that replica stopped acknowledging it (crashed): the outcome is
 *    unknown, so it asks the executor to recover (find the created worker, or refuse to repeat an exec).
 * 4. The message is acknowledged only after the result is stored and the reply sent; a replica killed before that
 *    loses nothing: the command is redelivered to another replica after `commandAckWaitMs`.
 */
export class JetStreamCommandServer implements Subscription {
  readonly ready: Promise<void>;
  readonly #bus: JetStreamEventBus;
  readonly #nc: NatsConnection;
  readonly #executor: CommandExecutor;
  readonly #replica: string;
  #resolveReady!: () => void;
  #closed = false;
  #current: Promise<void> | undefined;

  constructor(bus: JetStreamEventBus, nc: NatsConnection, executor: CommandExecutor) {
    this.#bus = bus;
    this.#nc = nc;
    this.#executor = executor;
    this.#replica = nc.info?.client_id === undefined ? 'replica' : `client-${nc.info.client_id}`;
    this.ready = new Promise((r) => (this.#resolveReady = r));
  }

  open(): void {
    void this.#run();
  }

  unsubscribe(): void {
    void this.close();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#bus.forget(this);
    await this.#current;
  }

  #streams(): { commands: StreamDefinition; results: StreamDefinition } {
    const { streams } = this.#bus.internals;
    const commands = streams.streams.find((s) => s.role === 'commands');
    const results = streams.streams.find((s) => s.role === 'commandResults');
    if (commands === undefined || results === undefined) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'serving commands needs streams with role commands and commandResults in the streams file');
    }
    return { commands, results };
  }

  async #run(): Promise<void> {
    let backoff = 100;
    while (!this.#closed) {
      try {
        const { js, jsm, streams, connected } = this.#bus.internals;
        if (js === undefined || jsm === undefined || !connected) throw new Error('not connected');
        const { commands } = this.#streams();
        const config = {
          durable_name: COMMAND_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(streams.consumers.commandAckWaitMs),
          max_deliver: -1,
          max_ack_pending: 1_000,
          deliver_policy: DeliverPolicy.All,
        };
        try {
          await jsm.consumers.info(commands.name, COMMAND_CONSUMER);
        } catch {
          await jsm.consumers.add(commands.name, config).catch(async (error: unknown) => {
            // Another replica created it in between.
            await jsm.consumers.info(commands.name, COMMAND_CONSUMER).catch(() => Promise.reject(error));
          });
        }
        const consumer = await js.consumers.get(commands.name, COMMAND_CONSUMER);
        this.#resolveReady();
        backoff = 100;
        while (!this.#closed) {
          const m = await consumer.next({ expires: 2_000 });
          if (m === null) continue;
          if (this.#closed) {
            m.nak();
            break;
          }
          this.#current = this.#handle(m, js, jsm);
          await this.#current;
          this.#current = undefined;
        }
      } catch (error) {
        if (this.#closed) break;
        this.#bus.warn('command consumer interrupted; resuming', { error: (error as Error).message });
        await sleep(backoff);
        backoff = Math.min(2_000, backoff * 2);
      }
    }
  }

  async #handle(m: JsMsg, js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    const replyTo = m.headers?.get(REPLY_TO_HEADER) ?? '';
    let command: unknown;
    try {
      command = JSON.parse(decoder.decode(m.data));
    } catch {
      command = undefined;
    }
    if (!checkCommand.Check(command)) {
      const first = [...checkCommand.Errors(command)][0];
      this.#reply(replyTo, { ok: false, error: { code: 'WM_ERR_VALIDATION', message: `invalid command: ${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim() } });
      m.term();
      return;
    }
    if (this.#executor.admit !== undefined) {
      // Refused commands are answered but not recorded: the same key may come back with valid credentials.
      const refused = await this.#execute(async () => this.#executor.admit?.(command));
      if (!refused.ok) {
        this.#reply(replyTo, refused);
        m.term();
        return;
      }
    }
    const { results } = this.#streams();
    const subject = resultSubject(this.#bus.internals.subjects.prefix, command.idempotencyKey);
    const ackWait = this.#bus.internals.streams.consumers.commandAckWaitMs;
    const keepAlive = setInterval(() => m.working(), Math.max(50, Math.floor(ackWait / 3)));
    try {
      let record = await readCommandRecord(jsm, results.name, subject);
      let claimed = false;
      if (record === undefined) {
        try {
          const claim: CommandRecord = { state: 'running', replica: this.#replica, at: new Date().toISOString() };
          await js.publish(subject, encoder.encode(JSON.stringify(claim)), { expect: { lastSubjectSequence: 0 } });
          claimed = true;
        } catch (error) {
          // Lost the compare-and-set: someone else claimed the key first.
          record = await readCommandRecord(jsm, results.name, subject);
          if (record === undefined) throw error;
        }
      }
      let reply: CommandReply;
      if (record?.state === 'done') {
        reply = record.reply;
      } else {
        reply = await this.#execute(() => (claimed ? this.#executor.run(command) : this.#executor.recover(command)));
        const done: CommandRecord = { state: 'done', reply };
        await js.publish(subject, encoder.encode(JSON.stringify(done)));
      }
      this.#reply(replyTo, reply);
      m.ack();
    } catch (error) {
      // The result could not be stored: leave the command for a retry (here or on another replica).
      this.#bus.warn('command failed before its result was stored; it will be redelivered', { operation: command.operation, error: (error as Error).message });
      m.nak(500);
    } finally {
      clearInterval(keepAlive);
    }
  }

  async #execute(fn: () => Promise<unknown>): Promise<CommandReply> {
    try {
      return { ok: true, result: JSON.parse(JSON.stringify((await fn()) ?? null)) as unknown };
    } catch (error) {
      const e = toWorkerManagerError(error);
      return { ok: false, error: e.details === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, details: e.details } };
    }
  }

  #reply(replyTo: string, reply: CommandReply): void {
    if (replyTo === '') return;
    this.#nc.publish(replyTo, JSON.stringify(reply));
  }
}
