import { randomUUID } from 'node:crypto';
import type { EventEnvelope } from './EventEnvelope.ts';
import { EVENT_DATA } from './eventSchemas.ts';
import type { SubjectName, Subjects } from './subjects.ts';

/** Optional context carried into an event. */
export interface EventContext {
  correlationId?: string | undefined;
  causationId?: string | undefined;
  tenant?: string | undefined;
  subject?: string | undefined;
}

/** Builds a CloudEvents envelope for a well-known event; the id doubles as the de-duplication id. */
export function createEvent<T>(subjects: Subjects, source: string, name: SubjectName, data: T, context: EventContext = {}): EventEnvelope<T> {
  const event: EventEnvelope<T> = {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type: subjects.typeOf(name),
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    dataversion: EVENT_DATA[name].version,
    busSubject: subjects.of(name),
    data,
  };
  if (context.subject !== undefined) event.subject = context.subject;
  if (context.correlationId !== undefined) event.correlationid = context.correlationId;
  if (context.causationId !== undefined) event.causationid = context.causationId;
  if (context.tenant !== undefined) event.tenant = context.tenant;
  return event;
}
