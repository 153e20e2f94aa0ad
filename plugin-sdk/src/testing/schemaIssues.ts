import type { Validator } from 'typebox/compile';

/** One way a value fails its schema: where (a JSON pointer into the value) and why. */
export interface SchemaIssue {
  instancePath: string;
  message: string;
}

/** The issues a compiled validator reports for a value, reduced to plain, cloneable data. */
export function schemaIssues(validator: Validator, value: unknown): SchemaIssue[] {
  return validator.Errors(value).map((e) => ({ instancePath: e.instancePath, message: e.message }));
}

/** `"/spec/command must be array; / must have required properties workerId"`, for error messages. */
export function formatIssues(issues: readonly SchemaIssue[]): string {
  return issues.map((i) => `${i.instancePath === '' ? '/' : i.instancePath} ${i.message}`).join('; ');
}
