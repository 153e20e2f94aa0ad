import Type, { type Static } from 'typebox';

/** Worker ids are chosen by the host (or the caller) and used in names and labels on every infrastructure. */
export const WorkerId = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: 'DNS-label-safe worker id' });
/** A worker id: lowercase letters, digits and dashes, 1-63 characters. */
export type WorkerId = Static<typeof WorkerId>;

/** Free-form labels, copied onto infrastructure resources. */
export const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 253 }));
/** Label map. */
export type Labels = Static<typeof Labels>;

/** ISO-8601 timestamp (UTC). */
export const Timestamp = Type.String({ description: 'ISO-8601 timestamp' });
/** ISO-8601 timestamp string. */
export type Timestamp = Static<typeof Timestamp>;

/** Environment variables given to a worker. */
export const EnvMap = Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String());
/** Environment map. */
export type EnvMap = Static<typeof EnvMap>;
