import Type, { type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { EventEnvelope } from './EventEnvelope.ts';
import { DEAD_LETTER_TYPE, SUBJECT_STEMS, type SubjectName } from './subjects.ts';

// Data schemas leave additionalProperties open on purpose: a consumer built for dataversion 1 must accept an event of
// a later version that added fields. Removing or retyping a field needs a new event type, not a new dataversion.

const WorkerEventData = (type: string, extra: Record<string, TSchema> = {}) =>
  Type.Object({ instance: Type.String({ minLength: 1 }), type: Type.Literal(type), workerId: Type.String({ minLength: 1 }), timestamp: Type.String(), ...extra });

const PluginEventData = Type.Object({
  instance: Type.String({ minLength: 1 }),
  plugin: Type.String({ minLength: 1 }),
  version: Type.String(),
  state: Type.String(),
});

/** Data schema and current data version of each well-known event. */
export const EVENT_DATA: Record<SubjectName, { version: number; schema: TSchema }> = {
  workerCreated: { version: 1, schema: WorkerEventData('WorkerCreated') },
  workerStateChanged: { version: 1, schema: WorkerEventData('WorkerStateChanged', { oldState: Type.Object({ phase: Type.String() }), newState: Type.Object({ phase: Type.String() }) }) },
  workerTerminated: { version: 1, schema: WorkerEventData('WorkerTerminated') },
  workerFailed: { version: 1, schema: WorkerEventData('WorkerFailed', { reason: Type.String() }) },
  secretRotated: { version: 1, schema: Type.Object({ secret: Type.String({ minLength: 1 }) }) },
  secretRotationFailed: { version: 1, schema: Type.Object({ secret: Type.String({ minLength: 1 }), reason: Type.String() }) },
  authGranted: { version: 1, schema: Type.Object({ principal: Type.String({ minLength: 1 }), action: Type.String({ minLength: 1 }) }) },
  authDenied: { version: 1, schema: Type.Object({ principal: Type.String({ minLength: 1 }), action: Type.String({ minLength: 1 }) }) },
  pluginCrashed: { version: 1, schema: PluginEventData },
  pluginQuarantined: { version: 1, schema: PluginEventData },
};

/** Data of a dead-letter event: the event a consumer gave up on, and why. */
export const DeadLetterData = Type.Object({
  consumer: Type.String({ minLength: 1 }),
  deliveries: Type.Integer({ minimum: 1 }),
  error: Type.Object({ code: Type.Optional(Type.String()), message: Type.String() }),
  event: EventEnvelope,
});

const checkEnvelope = Compile(EventEnvelope);
const byType = new Map<string, { version: number; check: ReturnType<typeof Compile> }>(
  (Object.keys(SUBJECT_STEMS) as SubjectName[]).map((name) => [`dev.worker-manager.${SUBJECT_STEMS[name]}`, { version: EVENT_DATA[name].version, check: Compile(EVENT_DATA[name].schema) }]),
);
byType.set(DEAD_LETTER_TYPE, { version: 1, check: Compile(DeadLetterData) });

/**
 * Why an event is not valid, or undefined when it is: the envelope must match the CloudEvents schema and, for a known
 * type, the data must match that type's schema. Unknown types pass with a valid envelope, so that a new publisher does
 * not break old consumers; a newer `dataversion` than this host knows is checked against the fields it knows.
 */
export function eventProblem(event: unknown): string | undefined {
  if (!checkEnvelope.Check(event)) {
    const first = [...checkEnvelope.Errors(event)][0];
    return `invalid event envelope: ${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim();
  }
  const known = byType.get((event as EventEnvelope).type);
  if (known === undefined) return undefined;
  const data = (event as EventEnvelope).data;
  if (!known.check.Check(data)) {
    const first = [...known.check.Errors(data)][0];
    return `invalid data for ${(event as EventEnvelope).type}: /data${first?.instancePath ?? ''} ${first?.message ?? ''}`.trim();
  }
  return undefined;
}
