import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';

/**
 * Fastify validator compiler backed by typebox's compiled checks, so HTTP input is validated by the same engine
 * as config, thread messages and bus payloads. Query strings and path params arrive as text and are converted
 * (`"5"` to 5, `"true"` to true) first; bodies are checked as sent. A failure is a WM_ERR_VALIDATION whose details
 * name the offending path, prefixed with the part of the request (`/body/spec/command`).
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const convert = httpPart === 'querystring' || httpPart === 'params' || httpPart === 'headers';
  const part = httpPart ?? 'body';
  // A body whose fields are all optional may be left out (fastify then gives null): it reads as `{}`.
  const emptyBodyOk = part === 'body' && check.Check({});
  return (data: unknown) => {
    const value = convert ? Value.Convert(schema, data) : (data === undefined || data === null) && emptyBodyOk ? {} : data;
    if (check.Check(value)) return { value };
    const issues = [...check.Errors(value)].slice(0, 10).flatMap(issuesOf).map((e) => ({ path: `/${part}${e.path}`, message: e.message }));
    const first = issues[0] ?? { path: `/${part}`, message: 'invalid' };
    return { error: new WorkerManagerError('WM_ERR_VALIDATION', `${first.path}: ${first.message}`, { details: { path: first.path, issues } }) };
  };
};

// typebox reports an unknown field as the `false` additionalProperties schema failing at the field's own path.
function isUnknownField(error: { keyword: string; schemaPath: string }): boolean {
  return error.keyword === 'boolean' && error.schemaPath.endsWith('additionalProperties');
}

// A missing field is reported on its parent; name each missing field's own path, as for an unknown one.
function issuesOf(error: { keyword: string; schemaPath: string; instancePath: string; message: string; params?: unknown }): Array<{ path: string; message: string }> {
  const missing = (error.params as { requiredProperties?: unknown } | undefined)?.requiredProperties;
  if (error.keyword === 'required' && Array.isArray(missing)) return missing.map((name) => ({ path: `${error.instancePath}/${String(name)}`, message: 'required field missing' }));
  return [{ path: error.instancePath, message: isUnknownField(error) ? 'unknown field' : error.message }];
}
