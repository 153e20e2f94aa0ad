import { Settings } from 'typebox/system';
import type { SchemaError } from './formatIssues.ts';

/** Upper bound on errors gathered for one value: every problem in a hand-written file, but not unbounded. */
export const MAX_SCHEMA_ERRORS = 1_000;

/**
 * All validation errors of a value. typebox stops at `maxErrors` (8 by default, a process-wide setting), which would
 * hide problems from `config validate`; the limit is raised only for this synchronous call and then restored.
 */
export function collectSchemaErrors<E extends SchemaError>(validator: { Errors(value: unknown): Iterable<E> }, value: unknown): E[] {
  const previous = Settings.Get().maxErrors;
  Settings.Set({ maxErrors: Math.max(previous, MAX_SCHEMA_ERRORS) });
  try {
    return [...validator.Errors(value)];
  } finally {
    Settings.Set({ maxErrors: previous });
  }
}
