import type { Command } from 'commander';
import { hostError } from '../../errors.ts';
import { followEventStream } from '../client/followEventStream.ts';
import { action, clientFor, collect, integer, note, out, withApiOptions, type ApiOptions } from './apiCommand.ts';

interface EventsFlags extends ApiOptions {
  subject?: string;
  type?: string[];
  worker?: string[];
  follow?: boolean;
  after?: string;
  max?: number;
  timeout?: number;
}

/** The fields a line shows; the API sends the whole CloudEvents envelope. */
interface Envelope {
  id: string;
  type: string;
  time?: string;
  subject?: string;
  busSubject?: string;
  data?: unknown;
}

function envelopeOf(data: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    value = undefined;
  }
  const e = value as Partial<Envelope> | undefined;
  if (typeof e !== 'object' || e === null || typeof e.id !== 'string' || typeof e.type !== 'string') {
    throw hostError('HOST_ERR_CLI_BAD_RESPONSE', 'the event stream sent an event that is not a CloudEvents envelope');
  }
  return e as Envelope;
}

/** What the server says when it cannot replay from the id a reconnect asked for. */
function gapMessage(data: string): string {
  try {
    const body = JSON.parse(data) as { message?: unknown };
    if (typeof body.message === 'string') return body.message;
  } catch {
    // Fall through to the generic text.
  }
  return 'the server could not replay the events published while disconnected';
}

/**
 * `wm events`: the bus events as they happen. Without --follow a dropped stream ends the command (exit 5); with it,
 * wm reconnects with the id of the last event printed, and the server sends what was published meanwhile (from its
 * recent history; when that no longer reaches back far enough, wm says so on stderr and goes on).
 */
export function registerEventsCommand(program: Command): Command {
  return withApiOptions(program.command('events'))
    .description('print bus events as they happen (one line each; --json: one envelope per line)')
    .option('-f, --follow', 'reconnect when the stream drops, and keep printing')
    .option('-s, --subject <pattern>', 'NATS subject pattern under the prefix, e.g. ci.worker.>')
    .option('-t, --type <type>', 'CloudEvents type, e.g. dev.worker-manager.worker.created (repeatable)', collect)
    .option('-w, --worker <id>', 'only events about this worker (repeatable)', collect)
    .option('--after <id>', 'first the events published after this event id, as far back as the server still holds them')
    .option('-n, --max <n>', 'exit after this many events', integer)
    .option('--timeout <ms>', 'exit (0) after this long', integer)
    .action(action(async (opts: EventsFlags) => {
      const client = await clientFor(opts);
      const signal = opts.timeout === undefined ? undefined : AbortSignal.timeout(opts.timeout);
      let seen = 0;
      if (opts.max === 0) return;
      const stream = followEventStream(client, '/v1/events', {
        query: { subject: opts.subject, type: opts.type, workerId: opts.worker },
        maxReconnects: opts.follow === true ? 10 : 0,
        ...(opts.after === undefined ? {} : { lastEventId: opts.after }),
        // The server starts sending the moment it answers: from here on, nothing published is missed.
        onOpen: (attempt) => note(attempt === 0 ? 'following events' : 'following events again, from the last one printed'),
        onReconnect: () => note('event stream dropped; reconnecting'),
        ...(signal === undefined ? {} : { signal }),
      });
      for await (const event of stream) {
        if (event.event === 'gap') {
          note(`warning: ${gapMessage(event.data)}`);
          continue;
        }
        const envelope = envelopeOf(event.data);
        if (opts.json === true) out(event.data);
        else out(`${envelope.time ?? '-'}  ${envelope.type}  ${envelope.subject ?? '-'}  ${JSON.stringify(envelope.data ?? null)}`);
        seen += 1;
        if (opts.max !== undefined && seen >= opts.max) break;
      }
    }));
}
