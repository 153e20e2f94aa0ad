import { readFile } from 'node:fs/promises';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { parse } from 'yaml';
import { hostError } from '../../../errors.ts';

const StreamName = Type.String({ pattern: '^[A-Za-z0-9_{}-]+$', description: 'Stream name; `{prefixName}` is replaced.' });

/** One JetStream stream the host creates or verifies at start. */
export const StreamDefinition = Type.Object(
  {
    name: StreamName,
    description: Type.Optional(Type.String()),
    role: Type.Union([Type.Literal('events'), Type.Literal('deadLetters'), Type.Literal('commands'), Type.Literal('commandResults'), Type.Literal('auditAnchor')], {
      default: 'events',
      description: 'What the stream holds: subscriptions read `events`, `deadLetters` and `auditAnchor` (the audit chain heads); `commands` is the work queue of worker commands; `commandResults` keeps the first result of each idempotency key.',
    }),
    subjects: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Subjects; `{prefix}` is replaced by bus.subjectPrefix.' }),
    retention: Type.Union([Type.Literal('limits'), Type.Literal('interest'), Type.Literal('workqueue')], { default: 'limits' }),
    storage: Type.Union([Type.Literal('file'), Type.Literal('memory')], { default: 'file' }),
    maxAgeMs: Type.Integer({ minimum: 0, default: 0, description: '0 keeps messages forever (within the other limits).' }),
    maxBytes: Type.Integer({ minimum: -1, default: -1 }),
    maxMsgs: Type.Integer({ minimum: -1, default: -1 }),
    maxMsgsPerSubject: Type.Integer({ minimum: -1, default: -1 }),
    replicas: Type.Integer({ minimum: 1, maximum: 5, default: 1 }),
    duplicateWindowMs: Type.Integer({ minimum: 1, default: 120_000, description: 'Window in which a repeated Nats-Msg-Id is dropped.' }),
    denyDelete: Type.Boolean({ default: false, description: 'Refuse to delete single messages (`deny_delete`); once set on a server it cannot be cleared.' }),
    denyPurge: Type.Boolean({ default: false, description: 'Refuse to purge the stream (`deny_purge`); once set on a server it cannot be cleared.' }),
  },
  { additionalProperties: false },
);
/** Stream definition after defaults. */
export type StreamDefinition = Static<typeof StreamDefinition>;

/** Defaults of the consumers the bus creates for subscriptions. */
export const ConsumerDefaults = Type.Object(
  {
    ackWaitMs: Type.Integer({ minimum: 100, default: 30_000, description: 'Unacknowledged deliveries are redelivered after this long.' }),
    maxDeliver: Type.Integer({ minimum: 1, default: 5, description: 'Deliveries of one event before it is dead-lettered.' }),
    maxAckPending: Type.Integer({ minimum: 1, default: 1, description: '1 keeps per-worker order across redeliveries; more trades order for throughput.' }),
    inactiveThresholdMs: Type.Integer({ minimum: 1_000, default: 3_600_000, description: 'A non-durable subscription\'s consumer is removed after this long without a client.' }),
    commandAckWaitMs: Type.Integer({ minimum: 100, default: 30_000, description: 'A command whose replica stops answering (crashed) goes to another replica after this long.' }),
  },
  { additionalProperties: false, default: {} },
);
/** Consumer defaults. */
export type ConsumerDefaults = Static<typeof ConsumerDefaults>;

/** The declarative file (`config/jetstream/streams.yaml`). */
export const StreamsFile = Type.Object(
  {
    streams: Type.Array(StreamDefinition, { minItems: 1 }),
    consumers: ConsumerDefaults,
  },
  { additionalProperties: false },
);
/** Streams file after defaults. */
export type StreamsFile = Static<typeof StreamsFile>;

const check = Compile(StreamsFile);

/** Whether subscriptions read the stream and its messages are events (every role but the command queue and results). */
export function isEventStream(def: StreamDefinition): boolean {
  return def.role === 'events' || def.role === 'deadLetters' || def.role === 'auditAnchor';
}

/** Replaces `{prefix}` (the subject prefix) and `{prefixName}` (the prefix made a valid stream-name token). */
export function expandStreams(file: StreamsFile, prefix: string): StreamsFile {
  const prefixName = prefix.replace(/[^A-Za-z0-9_-]/g, '_').toUpperCase();
  const sub = (s: string): string => s.replaceAll('{prefixName}', prefixName).replaceAll('{prefix}', prefix);
  return { ...file, streams: file.streams.map((s) => ({ ...s, name: sub(s.name), subjects: s.subjects.map(sub) })) };
}

/** Parses and validates a streams file, with defaults applied and placeholders expanded. */
export function parseStreamsFile(text: string, file: string, prefix: string): StreamsFile {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw hostError('HOST_ERR_CONFIG_PARSE', `${file}: ${(error as Error).message}`, { details: { file }, cause: error });
  }
  const value = Value.Default(StreamsFile, Value.Clone(raw));
  if (!check.Check(value)) {
    const issues = [...check.Errors(value)].map((e) => `${e.instancePath || '/'} ${e.message}`);
    throw hostError('HOST_ERR_CONFIG_INVALID', `${file}: invalid JetStream stream definitions:\n  ${issues.join('\n  ')}`, { details: { file, issues } });
  }
  const expanded = expandStreams(value, prefix);
  for (const role of ['commands', 'commandResults', 'auditAnchor'] as const) {
    if (expanded.streams.filter((s) => s.role === role).length > 1) throw hostError('HOST_ERR_CONFIG_INVALID', `${file}: more than one stream with role ${role}`, { details: { file } });
  }
  const names = new Set<string>();
  for (const s of expanded.streams) {
    if (names.has(s.name)) throw hostError('HOST_ERR_CONFIG_INVALID', `${file}: stream ${s.name} is defined twice`, { details: { file } });
    names.add(s.name);
  }
  return expanded;
}

/** Reads a streams file. */
export async function loadStreamsFile(file: string, prefix: string): Promise<StreamsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw hostError('HOST_ERR_CONFIG_NOT_FOUND', `JetStream stream definitions not found: ${file}`, { details: { file }, cause: error });
  }
  return parseStreamsFile(text, file, prefix);
}
