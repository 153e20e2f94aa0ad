import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { EventEnvelope } from './EventEnvelope.ts';
import { DEAD_LETTER_TYPE, type Subjects } from './subjects.ts';

/**
 * Wraps an event a consumer gave up on. The id is derived from the event and the consumer, so dead-lettering the same
 * event twice (a redelivery racing the first attempt) is de-duplicated by the bus like any other repeat.
 */
export function deadLetterEvent(subjects: Subjects, event: EventEnvelope, consumer: string, deliveries: number, error: unknown): EventEnvelope {
  const err = error instanceof WorkerManagerError ? { code: error.code, message: error.message } : { message: error instanceof Error ? error.message : String(error) };
  const out: EventEnvelope = {
    specversion: '1.0',
    id: `dlq.${consumer}.${event.id}`,
    source: event.source,
    type: DEAD_LETTER_TYPE,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    dataversion: 1,
    busSubject: subjects.deadLetter(consumer),
    data: { consumer, deliveries, error: err, event },
  };
  if (event.subject !== undefined) out.subject = event.subject;
  if (event.correlationid !== undefined) out.correlationid = event.correlationid;
  out.causationid = event.id;
  if (event.tenant !== undefined) out.tenant = event.tenant;
  return out;
}
