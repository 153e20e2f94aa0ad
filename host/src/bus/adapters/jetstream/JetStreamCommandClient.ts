import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { createInbox, headers, type NatsConnection } from '@nats-io/transport-node';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { CommandReply, WorkerCommand } from '../../commands/workerCommand.ts';
import type { Subjects } from '../../subjects.ts';
import { readCommandRecord, REPLY_TO_HEADER, resultSubject } from './JetStreamCommandServer.ts';

const decoder = new TextDecoder();

/**
 * Sends worker commands to whichever host replica takes them (for orchestrators and tests). A command is queued with
 * its idempotency key as `Nats-Msg-Id`; the reply comes on an inbox, and the client also polls the results stream, so
 * a repeated command (which the queue drops as a duplicate) and a reply lost with a crashed replica still resolve.
 */
export class JetStreamCommandClient {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: Promise<JetStreamManager>;
  readonly #subjects: Subjects;
  readonly #resultsStream: string;

  constructor(nc: NatsConnection, options: { subjects: Subjects; resultsStream: string }) {
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#jsm = jetstreamManager(nc);
    this.#subjects = options.subjects;
    this.#resultsStream = options.resultsStream;
  }

  /** Sends a command and waits for its reply (`WM_ERR_TIMEOUT` after `timeoutMs`). */
  async send(command: WorkerCommand, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<CommandReply> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const inbox = createInbox();
    const sub = this.#nc.subscribe(inbox, { max: 1 });
    let done = false;
    try {
      const fromInbox = (async (): Promise<CommandReply | undefined> => {
        for await (const m of sub) return JSON.parse(decoder.decode(m.data)) as CommandReply;
        return undefined;
      })();
      const h = headers();
      h.set(REPLY_TO_HEADER, inbox);
      await this.#js.publish(this.#subjects.command(command.operation), JSON.stringify(command), { msgID: command.idempotencyKey, headers: h });
      const jsm = await this.#jsm;
      const subject = resultSubject(this.#subjects.prefix, command.idempotencyKey);
      const fromResults = (async (): Promise<CommandReply | undefined> => {
        while (!done) {
          await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
          const record = await readCommandRecord(jsm, this.#resultsStream, subject).catch(() => undefined);
          if (record?.state === 'done') return record.reply;
        }
        return undefined;
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WorkerManagerError('WM_ERR_TIMEOUT', `no reply to ${command.operation} (key ${command.idempotencyKey}) within ${timeoutMs} ms`, { details: { operation: command.operation } })), timeoutMs);
      });
      try {
        const reply = await Promise.race([fromInbox.then((r) => r ?? new Promise<never>(() => {})), fromResults.then((r) => r ?? new Promise<never>(() => {})), timeout]);
        return reply;
      } finally {
        clearTimeout(timer);
      }
    } finally {
      done = true;
      sub.unsubscribe();
    }
  }
}
