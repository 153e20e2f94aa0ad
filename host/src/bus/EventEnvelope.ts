import Type, { type Static } from 'typebox';

/**
 * CloudEvents 1.0 (JSON format) plus the extension attributes we rely on: correlation and causation ids, tenant, and a
 * data version so consumers can tolerate new fields. The bus subject travels with the envelope so that adapters can
 * route it without parsing `type`.
 */
export const EventEnvelope = Type.Object(
  {
    specversion: Type.Literal('1.0'),
    id: Type.String({ minLength: 1 }),
    source: Type.String({ minLength: 1 }),
    type: Type.String({ minLength: 1 }),
    subject: Type.Optional(Type.String()),
    time: Type.String(),
    datacontenttype: Type.Literal('application/json'),
    dataversion: Type.Integer({ minimum: 1 }),
    correlationid: Type.Optional(Type.String()),
    causationid: Type.Optional(Type.String()),
    tenant: Type.Optional(Type.String()),
    /** The bus subject (e.g. `ci.worker.created`). */
    busSubject: Type.String({ minLength: 1 }),
    data: Type.Unknown(),
  },
  { additionalProperties: false },
);
/** An event as it travels on the bus. */
export type EventEnvelope<T = unknown> = Omit<Static<typeof EventEnvelope>, 'data'> & { data: T };
