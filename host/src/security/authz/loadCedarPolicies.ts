import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { DetailedError, Schema } from '@cedar-policy/cedar-wasm/nodejs';
import { hostError } from '../../errors.ts';

/** The policies shipped with worker-manager (`config/policies` of the repository). */
export const DEFAULT_POLICIES_DIR = fileURLToPath(new URL('../../../../config/policies/', import.meta.url));

/** A policy set read from files and validated against its schema. */
export interface CedarPolicies {
  schema: Schema;
  /** Policy text by policy id (the `@id` annotation, else `<file>#<n>`). */
  policies: Record<string, string>;
  /** File each policy came from, by policy id. */
  files: Record<string, string>;
  /** Validator warnings (policies that validate but look suspicious), one line each. */
  warnings: string[];
}

const invalid = (message: string, details: Record<string, unknown>, cause?: unknown) =>
  hostError('HOST_ERR_AUTHZ_POLICY_INVALID', message, { details, ...(cause === undefined ? {} : { cause }) });

/** `line:col` of a byte offset, for errors that point into a file. */
function position(text: string, offset: number | undefined): string {
  if (offset === undefined) return '';
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `:${line}:${offset - before.lastIndexOf('\n')}`;
}

const describe = (e: DetailedError): string => (e.help === null || e.help === undefined ? e.message : `${e.message} (${e.help})`);

async function readSchema(file: string): Promise<Schema> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw invalid(`cannot read the Cedar schema ${file}: ${(error as Error).message}`, { file }, error);
  }
  let schema: Schema = text;
  if (file.endsWith('.json')) {
    try {
      schema = JSON.parse(text) as Schema;
    } catch (error) {
      throw invalid(`the Cedar schema ${file} is not valid JSON: ${(error as Error).message}`, { file }, error);
    }
  }
  const parsed = cedar.checkParseSchema(schema);
  if (parsed.type === 'failure') {
    const first = parsed.errors[0];
    throw invalid(`the Cedar schema ${file}${typeof schema === 'string' ? position(text, first?.sourceLocations?.[0]?.start) : ''} does not parse: ${first === undefined ? 'unknown error' : describe(first)}`, { file });
  }
  return schema;
}

/**
 * Reads every `*.cedar` file directly in `dir` (sorted, so ids are stable) and the schema, gives each policy its
 * `@id` (or `<file>#<n>`), and validates the set in strict mode. Any problem, a file that does not parse, a duplicate
 * id, a policy the schema rejects, throws HOST_ERR_AUTHZ_POLICY_INVALID naming the file, the policy and the problem.
 */
export async function loadCedarPolicies(options: { policiesDir: string; schemaFile: string }): Promise<CedarPolicies> {
  const dir = options.policiesDir;
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.cedar')).map((e) => e.name).sort();
  } catch (error) {
    throw invalid(`cannot read the policy folder ${dir}: ${(error as Error).message}`, { dir }, error);
  }
  if (names.length === 0) throw invalid(`the policy folder ${dir} holds no .cedar file: every request would be denied`, { dir });
  const schema = await readSchema(path.resolve(dir, options.schemaFile));
  const policies: Record<string, string> = {};
  const files: Record<string, string> = {};
  for (const name of names) {
    const file = path.join(dir, name);
    const text = await readFile(file, 'utf8');
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') {
      const first = parts.errors[0];
      throw invalid(`${file}${position(text, first?.sourceLocations?.[0]?.start)}: ${first === undefined ? 'does not parse' : describe(first)}`, { file });
    }
    if (parts.policy_templates.length > 0) throw invalid(`${file}: policy templates are not supported; write static policies`, { file });
    parts.policies.forEach((policy, index) => {
      const json = cedar.policyToJson(policy);
      const id = json.type === 'success' ? json.json.annotations?.['id'] : undefined;
      const policyId = id ?? `${name}#${index}`;
      if (policies[policyId] !== undefined) {
        throw invalid(`policy id "${policyId}" is used twice: in ${files[policyId] ?? '?'} and ${file}`, { file, policy: policyId });
      }
      policies[policyId] = policy;
      files[policyId] = file;
    });
  }
  const result = cedar.validate({ schema, policies: { staticPolicies: policies }, validationSettings: { mode: 'strict' } });
  if (result.type === 'failure') {
    const first = result.errors[0];
    throw invalid(`the policies in ${dir} cannot be validated: ${first === undefined ? 'unknown error' : describe(first)}`, { dir });
  }
  const first = result.validationErrors[0];
  if (first !== undefined) {
    const more = result.validationErrors.length > 1 ? ` (and ${result.validationErrors.length - 1} more)` : '';
    throw invalid(`policy "${first.policyId}" in ${files[first.policyId] ?? dir} does not validate against the schema: ${describe(first.error)}${more}`, {
      file: files[first.policyId], policy: first.policyId, problems: result.validationErrors.map((e) => ({ policy: e.policyId, message: e.error.message })),
    });
  }
  const warnings = [...result.validationWarnings.map((w) => `policy "${w.policyId}": ${w.error.message}`), ...result.otherWarnings.map((w) => w.message)];
  return { schema, policies, files, warnings };
}
