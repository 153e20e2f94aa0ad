import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';

/** The live value of one key, with the KV revision a compare-and-set write must name. */
export interface KvRow {
  key: string;
  revision: number;
  value: string;
}

/** True for the error a KV create or compare-and-set update fails with when the key is not at the expected revision. */
export function isRevisionMismatch(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/**
 * Every live key of a KV bucket with its value, read by one ordered consumer delivering the last message per subject
 * (one round of messages, where `keys()` then `get()` per key would cost a request each). Deleted and purged keys
 * are skipped. The scan ends at the message the server says is the last pending one, so it sees at least every
 * write that finished before it started; writes made during the scan may or may not be included.
 */
export async function scanBucket(js: JetStreamClient, bucket: string): Promise<KvRow[]> {
  const prefix = `$KV.${bucket}.`;
  // A single filter subject (not an array): nats-server 2.9 accepts only filter_subject.
  const consumer = await js.consumers.get(`KV_${bucket}`, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject });
  const rows: KvRow[] = [];
  if ((await consumer.info(true)).num_pending === 0) {
    await consumer.delete().catch(() => undefined);
    return rows;
  }
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      const op = m.headers?.get('KV-Operation');
      if (op !== 'DEL' && op !== 'PURGE') rows.push({ key: m.subject.slice(prefix.length), revision: m.seq, value: m.string() });
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return rows;
}
