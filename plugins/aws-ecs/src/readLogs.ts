import { GetLogEventsCommand, type CloudWatchLogsClient, type OutputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import type { LogChunk, LogOptions } from '@worker-manager/plugin-sdk';
import { sleep, type AwsCaller } from './AwsCaller.ts';
import { awsErrorName } from './awsError.ts';

/** Where a worker's output is: the awslogs stream `<prefix>/<container>/<task id>` of the configured group. */
export interface LogSource {
  logs: CloudWatchLogsClient;
  aws: AwsCaller;
  workerId: string;
  logGroup: string;
  logStream: string;
  pollIntervalMs: number;
  /** Whether the task has stopped (asked between polls of a followed stream). */
  isStopped(signal: AbortSignal): Promise<boolean>;
}

interface Page {
  events: OutputLogEvent[];
  /** The token to ask for what comes next; undefined while the stream does not exist. */
  next: string | undefined;
}

/**
 * One page forward from `token` (from the head without one). A stream that does not exist yet (the container has not
 * started, or printed nothing: awslogs makes the stream on the first line) is empty, not an error.
 */
async function page(source: LogSource, token: string | undefined, signal: AbortSignal): Promise<Page> {
  try {
    const out = await source.aws.send(
      (abortSignal) =>
        source.logs.send(
          new GetLogEventsCommand({ logGroupName: source.logGroup, logStreamName: source.logStream, startFromHead: true, ...(token === undefined ? {} : { nextToken: token }) }),
          { abortSignal },
        ),
      { operation: 'logs:GetLogEvents', workerId: source.workerId },
      signal,
    );
    return { events: out.events ?? [], next: out.nextForwardToken };
  } catch (error) {
    if ((error as { details?: { awsError?: string } }).details?.awsError === 'ResourceNotFoundException' || awsErrorName(error) === 'ResourceNotFoundException') {
      return { events: [], next: token };
    }
    throw error;
  }
}

/**
 * Everything from `token` on: pages until CloudWatch answers the token it was given, its documented end of a stream.
 */
async function drain(source: LogSource, token: string | undefined, signal: AbortSignal): Promise<Page> {
  const events: OutputLogEvent[] = [];
  let at = token;
  for (;;) {
    const p = await page(source, at, signal);
    events.push(...p.events);
    if (p.next === undefined || p.next === at || p.events.length === 0) return { events, next: p.next ?? at };
    at = p.next;
  }
}

const toChunk = (e: OutputLogEvent, seq: number): LogChunk => ({
  // awslogs sends stdout and stderr into one stream, without telling them apart.
  stream: 'stdout',
  data: `${e.message ?? ''}\n`,
  timestamp: new Date(e.timestamp ?? Date.now()).toISOString(),
  seq,
});

/**
 * The worker's output as chunks, one per CloudWatch event (one line), `seq` being the event's position in its stream.
 * Reads the stream from its head (a stream's positions are only known from there), applies sinceSeq and tailLines,
 * then with `follow` polls with the last nextForwardToken until the task has stopped and a last read found nothing more.
 */
export async function* readLogs(source: LogSource, options: LogOptions, signal: AbortSignal): AsyncGenerator<LogChunk> {
  // awslogs has no stderr of its own: what a worker printed is all reported as stdout.
  if (options.stdout === false) return;
  const first = await drain(source, undefined, signal);
  let chunks = first.events.map((e, i) => toChunk(e, i));
  let seq = chunks.length;
  if (options.sinceSeq !== undefined) chunks = chunks.filter((c) => c.seq >= options.sinceSeq!);
  if (options.tailLines !== undefined) chunks = options.tailLines === 0 ? [] : chunks.slice(-options.tailLines);
  for (const c of chunks) yield c;
  if (options.follow !== true) return;
  let token = first.next;
  while (!signal.aborted) {
    // Asked before the read: output printed before the task stopped is then in this read or the ones before it.
    const stopped = await source.isStopped(signal);
    const more = await drain(source, token, signal);
    token = more.next;
    for (const e of more.events) {
      const c = toChunk(e, seq++);
      if (options.sinceSeq === undefined || c.seq >= options.sinceSeq) yield c;
    }
    // awslogs delivers a stopped container's last lines with a delay: end only on a read after STOPPED that found
    // nothing new.
    if (stopped && more.events.length === 0) return;
    await sleep(source.pollIntervalMs, signal);
  }
}
