import Type, { type Static } from 'typebox';
import {
  MAX_ARG_LENGTH, MAX_ARGS, MAX_ENV_ENTRIES, MAX_ENV_NAME_LENGTH, MAX_ENV_VALUE_LENGTH, MAX_LABEL_NAME_LENGTH, MAX_LABEL_PREFIX_LENGTH, MAX_LABEL_VALUE_LENGTH, MAX_LABELS,
  MAX_PATH_LENGTH,
} from './limits.ts';

// typebox makes a Record a `patternProperties` schema, which leaves keys its key schema does not match unchecked:
// the maps below check their keys with `propertyNames` instead.

/**
 * Pattern of a string without NUL: C strings (argv, the environment, paths) end at the first one, and Node refuses to
 * hand one to the system.
 */
export const NUL_FREE = '^[^\\u0000]*$';

/** Worker ids are chosen by the host (or the caller) and used in names and labels on every infrastructure. */
export const WorkerId = Type.String({ pattern: '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$', description: 'DNS-label-safe worker id' });
/** A worker id: lowercase letters, digits and dashes, 1-63 characters. */
export type WorkerId = Static<typeof WorkerId>;

/**
 * A label key as Kubernetes spells it, unanchored (for composing): an optional DNS-subdomain prefix (at most 253
 * characters) and `/`, then a name of at most 63 letters, digits, `-`, `_` and `.` that starts and ends with a letter
 * or digit. Keys are copied onto resources of every provider and into `key=value` filters, so `=`, spaces and control
 * characters have no place in them.
 */
export const LABEL_KEY_PATTERN =
  `(?:[a-z0-9](?:[-a-z0-9.]{0,${MAX_LABEL_PREFIX_LENGTH - 2}}[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,${MAX_LABEL_NAME_LENGTH - 2}}[A-Za-z0-9])?`;

/** A label key (see {@link LABEL_KEY_PATTERN}). */
export const LabelKey = Type.String({
  minLength: 1,
  maxLength: MAX_LABEL_PREFIX_LENGTH + 1 + MAX_LABEL_NAME_LENGTH,
  pattern: `^${LABEL_KEY_PATTERN}$`,
  description: 'label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters',
});
/** A label value: at most 63 characters (Kubernetes' limit). */
export const LabelValue = Type.String({ maxLength: MAX_LABEL_VALUE_LENGTH });

/** Free-form labels, copied onto infrastructure resources: at most 64, keys and values as Kubernetes limits them. */
export const Labels = Type.Record(Type.String(), LabelValue, { propertyNames: LabelKey, maxProperties: MAX_LABELS });
/** Label map. */
export type Labels = Static<typeof Labels>;

/**
 * Labels a provider reports on a worker: the spec's, the owner labels, and what the infrastructure adds (a container
 * image's own labels), so neither their number nor their keys are the spec's to limit.
 */
export const WorkerLabels = Type.Record(Type.String(), Type.String({ maxLength: 253 }));
/** Reported label map. */
export type WorkerLabels = Static<typeof WorkerLabels>;

/** ISO-8601 timestamp (UTC). */
export const Timestamp = Type.String({ description: 'ISO-8601 timestamp' });
/** ISO-8601 timestamp string. */
export type Timestamp = Static<typeof Timestamp>;

/** An environment variable name: a letter or `_`, then letters, digits and `_`. */
export const EnvName = Type.String({ minLength: 1, maxLength: MAX_ENV_NAME_LENGTH, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' });

/** Environment variables given to a worker. */
export const EnvMap = Type.Record(Type.String(), Type.String({ maxLength: MAX_ENV_VALUE_LENGTH, pattern: NUL_FREE }), {
  propertyNames: EnvName,
  maxProperties: MAX_ENV_ENTRIES,
});
/** Environment map. */
export type EnvMap = Static<typeof EnvMap>;

/** One element of a command line. */
export const Argument = Type.String({ maxLength: MAX_ARG_LENGTH, pattern: NUL_FREE });

/** A command line: the program, then its arguments. */
export const CommandLine = Type.Array(Argument, { minItems: 1, maxItems: MAX_ARGS });

/** A file system path in a spec (absolute or relative, as the field says). */
export const SpecPath = Type.String({ minLength: 1, maxLength: MAX_PATH_LENGTH, pattern: NUL_FREE });
