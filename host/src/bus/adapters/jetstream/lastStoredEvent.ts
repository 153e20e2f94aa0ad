import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { hostError } from '../../../errors.ts';
import type { EventEnvelope } from '../../EventEnvelope.ts';
import { eventProblem } from '../../eventSchemas.ts';
import { subjectMatches } from '../../subjects.ts';
import { isEventStream, type StreamsFile } from './streamDefinitions.ts';

const decoder = new TextDecoder();

/**
 * The last event the streams hold on `subject` (no wildcards), or undefined when there is none. Throws
 * HOST_ERR_CONFIG_INVALID when no event stream of the definitions holds the subject, and HOST_ERR_PLUGIN_PROTOCOL when
 * the stored message is not a valid event.
 */
export async function lastStoredEvent(jsm: JetStreamManager, streams: StreamsFile, subject: string): Promise<EventEnvelope | undefined> {
  const stream = streams.streams.find((s) => isEventStream(s) && s.subjects.some((p) => subjectMatches(p, subject)));
  if (stream === undefined) throw hostError('HOST_ERR_CONFIG_INVALID', `no JetStream stream in the streams file holds ${subject}`, { details: { subject } });
  let stored;
  try {
    stored = await jsm.streams.getMessage(stream.name, { last_by_subj: subject });
  } catch (error) {
    if (error instanceof JetStreamApiError && (error.code === 10037 || error.status === 404)) return undefined;
    throw error;
  }
  if (stored === null) return undefined;
  let event: unknown;
  try {
    event = JSON.parse(decoder.decode(stored.data));
  } catch {
    event = undefined;
  }
  const problem = eventProblem(event);
  if (problem !== undefined) throw hostError('HOST_ERR_PLUGIN_PROTOCOL', `the last message of stream ${stream.name} on ${subject} is not a valid event: ${problem}`, { details: { stream: stream.name, subject, seq: stored.seq } });
  return event as EventEnvelope;
}
