import path from 'node:path';
import { childPointer, pointerSegments, type Locate, type SourcePosition } from './SourcePosition.ts';

export type { SourcePosition } from './SourcePosition.ts';

/** One problem in a config file, for humans (`formatIssue`) and for tools (`details.issues`). Never holds a value. */
export interface ConfigIssue {
  /** JSON pointer of the offending node; for a missing field, of the object that lacks it. '' for the whole file. */
  path: string;
  message: string;
  position?: SourcePosition;
  /** What would have been accepted, e.g. `integer`, `"trusted" | "restricted"`, `>= 1`. */
  expected?: string;
}

/** A typebox validation error; only `instancePath` and `message` are required, the rest sharpens the message. */
export interface SchemaError {
  instancePath: string;
  message: string;
  schemaPath?: string;
  keyword?: string;
  params?: unknown;
}

/** Extra context that makes schema messages better; both are optional. */
export interface SchemaIssueOptions {
  /** The value that was validated (relative to `basePointer`): lets messages say which type was found. */
  value?: unknown;
  /** The schema it was validated against: lets messages list allowed fields and literal alternatives. */
  schema?: unknown;
}

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isUnion = (e: SchemaError): boolean => e.keyword === 'anyOf' || e.keyword === 'oneOf';

function paramsOf(e: SchemaError): Json {
  return isRecord(e.params) ? e.params : {};
}

function within(child: string, parent: string): boolean {
  return child === parent || child.startsWith(`${parent}/`);
}

/** Resolves a JSON pointer (or a `#`-prefixed schema path) in a plain JSON value. */
function resolvePointer(root: unknown, pointer: string): { found: boolean; value: unknown } {
  const segments = pointerSegments(pointer.startsWith('#') ? pointer.slice(1) : pointer);
  if (segments === undefined) return { found: false, value: undefined };
  let current = root;
  for (const segment of segments) {
    if (Array.isArray(current) && /^\d+$/.test(segment) && Number(segment) < current.length) current = current[Number(segment)];
    else if (isRecord(current) && Object.hasOwn(current, segment)) current = current[segment];
    else return { found: false, value: undefined };
  }
  return { found: true, value: current };
}

/** JSON-ish type of a value, as used in "found ..." (never the value itself: it may be a secret). */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'object') return 'object';
  return typeof value;
}

function literal(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function parentSchemaPath(schemaPath: string): string {
  return schemaPath.slice(0, schemaPath.lastIndexOf('/'));
}

interface Context {
  basePointer: string;
  locate: Locate;
  options: SchemaIssueOptions;
}

function makeIssue(ctx: Context, instancePath: string, message: string, expected?: string): ConfigIssue {
  const issuePath = ctx.basePointer + instancePath;
  const issue: ConfigIssue = { path: issuePath, message };
  const position = ctx.locate(issuePath);
  if (position !== undefined) issue.position = position;
  if (expected !== undefined) issue.expected = expected;
  return issue;
}

function foundSuffix(ctx: Context, instancePath: string): string {
  if (!('value' in ctx.options)) return '';
  const at = resolvePointer(ctx.options.value, instancePath);
  return at.found ? `, found ${describeType(at.value)}` : '';
}

function schemaAt(ctx: Context, schemaPath: string | undefined): Json | undefined {
  if (schemaPath === undefined || ctx.options.schema === undefined) return undefined;
  const at = resolvePointer(ctx.options.schema, schemaPath);
  return at.found && isRecord(at.value) ? at.value : undefined;
}

function unknownField(ctx: Context, objectPath: string, objectSchemaPath: string | undefined, name: string): ConfigIssue {
  const objectSchema = schemaAt(ctx, objectSchemaPath);
  const properties = isRecord(objectSchema?.properties) ? Object.keys(objectSchema.properties) : [];
  const names = objectSchema?.propertyNames;
  const patterns =
    isRecord(names) && typeof names.pattern === 'string'
      ? [names.pattern]
      : isRecord(objectSchema?.patternProperties)
        ? Object.keys(objectSchema.patternProperties)
        : [];
  const fieldPath = childPointer(objectPath, name).slice(ctx.basePointer.length);
  if (properties.length === 0 && patterns.length > 0) {
    return makeIssue(ctx, fieldPath, `key '${name}' is not allowed: keys must match ${patterns.join(' or ')}`, patterns.join(' | '));
  }
  const allowed = properties.length > 0 ? ` (allowed: ${properties.join(', ')})` : '';
  return makeIssue(ctx, fieldPath, `unknown field '${name}'${allowed}`);
}

/** One line for a failed union: the allowed literals, the allowed types, or the closest alternative's problems. */
function unionIssue(ctx: Context, union: SchemaError, members: SchemaError[]): ConfigIssue {
  const unionSchema = schemaAt(ctx, union.schemaPath);
  const branches = unionSchema?.[union.keyword ?? 'anyOf'];
  if (Array.isArray(branches) && branches.length > 0 && branches.every((b) => isRecord(b) && 'const' in b)) {
    const allowed = branches.map((b) => literal((b as Json).const));
    return makeIssue(ctx, union.instancePath, `must be one of ${allowed.join(', ')}`, allowed.join(' | '));
  }
  if (union.keyword === 'oneOf' && Array.isArray(paramsOf(union).passingSchemas) && (paramsOf(union).passingSchemas as unknown[]).length > 1) {
    return makeIssue(ctx, union.instancePath, 'matches more than one of the allowed forms');
  }
  const sameNode = members.filter((m) => m.instancePath === union.instancePath);
  if (members.length > 0 && sameNode.length === members.length && members.every((m) => ['const', 'type', 'enum'].includes(m.keyword ?? ''))) {
    const allowed: string[] = [];
    for (const m of members) {
      const p = paramsOf(m);
      if (m.keyword === 'const') allowed.push(literal(p.allowedValue));
      else if (m.keyword === 'enum' && Array.isArray(p.allowedValues)) allowed.push(...p.allowedValues.map(literal));
      else if (m.keyword === 'type') allowed.push(...(Array.isArray(p.type) ? p.type.map(String) : [String(p.type)]));
    }
    const unique = [...new Set(allowed)];
    return makeIssue(ctx, union.instancePath, `expected ${unique.join(' or ')}${foundSuffix(ctx, union.instancePath)}`, unique.join(' | '));
  }
  // Mixed alternatives (objects, nested unions): show the problems of the alternative that came closest.
  const prefix = `${union.schemaPath}/${union.keyword}/`;
  const byBranch = new Map<string, SchemaError[]>();
  for (const m of members) {
    const branch = (m.schemaPath ?? '').slice(prefix.length).split('/')[0] ?? '';
    byBranch.set(branch, [...(byBranch.get(branch) ?? []), m]);
  }
  const closest = [...byBranch.values()].sort((a, b) => a.length - b.length)[0] ?? [];
  const detail = closest
    .filter((m) => !isUnion(m))
    .map((m) => {
      const where = m.instancePath === union.instancePath ? '' : `${m.instancePath.slice(union.instancePath.length)}: `;
      return `${where}${plainMessage(ctx, m)}`;
    })
    .join('; ');
  return makeIssue(ctx, union.instancePath, `does not match any allowed form${detail === '' ? '' : ` (closest: ${detail})`}`);
}

/** The message for one non-union error, without the pointer (the caller adds it, or the union names the node). */
function plainMessage(ctx: Context, e: SchemaError): string {
  const p = paramsOf(e);
  switch (e.keyword) {
    case 'type': {
      const types = Array.isArray(p.type) ? p.type.join(' or ') : String(p.type);
      return `expected ${types}${foundSuffix(ctx, e.instancePath)}`;
    }
    case 'const':
      return `must be ${literal(p.allowedValue)}`;
    case 'enum':
      return Array.isArray(p.allowedValues) ? `must be one of ${p.allowedValues.map(literal).join(', ')}` : e.message;
    case 'required':
      return Array.isArray(p.requiredProperties) ? `missing required field ${p.requiredProperties.map((n) => `'${String(n)}'`).join(', ')}` : e.message;
    case 'pattern':
      return `must match ${String(p.pattern)}`;
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long`;
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters long`;
    case 'minItems':
      return `must have at least ${String(p.limit)} items`;
    case 'maxItems':
      return `must have at most ${String(p.limit)} items`;
    default:
      return e.message;
  }
}

function expectedOf(e: SchemaError): string | undefined {
  const p = paramsOf(e);
  switch (e.keyword) {
    case 'type':
      return Array.isArray(p.type) ? p.type.join(' | ') : String(p.type);
    case 'const':
      return literal(p.allowedValue);
    case 'enum':
      return Array.isArray(p.allowedValues) ? p.allowedValues.map(literal).join(' | ') : undefined;
    case 'pattern':
      return String(p.pattern);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${String(p.comparison)} ${String(p.limit)}`;
    default:
      return undefined;
  }
}

/**
 * Turns typebox errors into one clear issue per problem, each with its file:line:col. Union failures collapse into
 * one line listing the alternatives, unknown fields are named and located at their key, missing fields are located
 * at the object that lacks them. `basePointer` is where the validated value sits in the config (e.g.
 * `/instances/0/config` for a plugin's instance config); pass `options.value` and `options.schema` for better
 * messages. Messages name types and fields, never values: a value may come from a secret environment variable.
 */
export function schemaIssues(
  errors: Iterable<SchemaError>,
  basePointer: string,
  locate: Locate,
  options: SchemaIssueOptions = {},
): ConfigIssue[] {
  const ctx: Context = { basePointer, locate, options };
  const all = [...errors];
  const unions = all.filter(isUnion);
  const ownerOf = (e: SchemaError): SchemaError | undefined => {
    let owner: SchemaError | undefined;
    for (const u of unions) {
      if (u === e || u.schemaPath === undefined || e.schemaPath === undefined) continue;
      if (!e.schemaPath.startsWith(`${u.schemaPath}/${u.keyword}/`) || !within(e.instancePath, u.instancePath)) continue;
      if (owner === undefined || (owner.schemaPath ?? '').length > u.schemaPath.length) owner = u;
    }
    return owner;
  };
  const members = new Map<SchemaError, SchemaError[]>();
  const top: SchemaError[] = [];
  for (const e of all) {
    const owner = ownerOf(e);
    if (owner === undefined) top.push(e);
    else members.set(owner, [...(members.get(owner) ?? []), e]);
  }

  const issues: ConfigIssue[] = [];
  const reportedUnknown = new Set<string>();
  for (const e of top) {
    if (isUnion(e)) {
      issues.push(unionIssue(ctx, e, members.get(e) ?? []));
    } else if (e.keyword === 'boolean' && e.schemaPath?.endsWith('/additionalProperties')) {
      const objectPath = e.instancePath.slice(0, e.instancePath.lastIndexOf('/'));
      const name = pointerSegments(e.instancePath)?.at(-1) ?? '';
      reportedUnknown.add(basePointer + e.instancePath);
      issues.push(unknownField(ctx, basePointer + objectPath, parentSchemaPath(e.schemaPath), name));
    } else if (e.schemaPath?.endsWith('/propertyNames')) {
      const name = pointerSegments(e.instancePath)?.at(-1) ?? '';
      const rule = e.keyword === 'pattern' ? `keys must match ${String(paramsOf(e).pattern)}` : `key ${plainMessage(ctx, e)}`;
      reportedUnknown.add(basePointer + e.instancePath);
      issues.push(makeIssue(ctx, e.instancePath, `key '${name}' is not allowed: ${rule}`, expectedOf(e)));
    } else if (e.keyword === 'required' && Array.isArray(paramsOf(e).requiredProperties)) {
      for (const name of paramsOf(e).requiredProperties as unknown[]) {
        issues.push(makeIssue(ctx, e.instancePath, `missing required field '${String(name)}'`, String(name)));
      }
    } else if (e.keyword !== 'additionalProperties' && e.keyword !== 'propertyNames') {
      issues.push(makeIssue(ctx, e.instancePath, plainMessage(ctx, e), expectedOf(e)));
    }
  }
  // typebox reports an unknown field (or a bad key) twice, on the field and on its object; the object's report is
  // the fallback for validators that only give the latter.
  for (const e of top) {
    if (e.keyword !== 'additionalProperties' && e.keyword !== 'propertyNames') continue;
    const names = paramsOf(e)[e.keyword];
    if (!Array.isArray(names)) continue;
    for (const name of names) {
      const fieldPath = childPointer(basePointer + e.instancePath, String(name));
      if (reportedUnknown.has(fieldPath)) continue;
      reportedUnknown.add(fieldPath);
      issues.push(unknownField(ctx, basePointer + e.instancePath, e.schemaPath, String(name)));
    }
  }
  return sortIssues(dedupeIssues(issues));
}

/**
 * Adds to each issue about a value that came from the environment the text it was written as (`${NAME}`), so the
 * reader knows which variable to fix while the message never holds the value. `fromEnv` is `LoadedConfig.fromEnv`.
 * Issues about a key (an unknown field) are left alone: keys are never interpolated.
 */
export function noteEnvSources(issues: ConfigIssue[], fromEnv: ReadonlyMap<string, string>): ConfigIssue[] {
  return issues.map((issue) => {
    const source = fromEnv.get(issue.path);
    if (source === undefined || issue.message.startsWith('unknown field ') || issue.message.startsWith('key \'')) return issue;
    return { ...issue, message: `${issue.message} (the value comes from the environment: ${source})` };
  });
}

function dedupeIssues(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = formatIssue(issue);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Orders issues as they appear in the file, then by pointer. */
export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort(
    (a, b) =>
      (a.position?.line ?? 0) - (b.position?.line ?? 0) ||
      (a.position?.col ?? 0) - (b.position?.col ?? 0) ||
      a.path.localeCompare(b.path),
  );
}

/** The file name as a human wants it: relative to the working directory when the file is under it. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/** `config/default.yaml:12:7: /instances/0/config/maxWorkers: must be >= 1` (pointer left out for the whole file). */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.position === undefined ? '' : `${displayPath(issue.position.file)}:${issue.position.line}:${issue.position.col}: `;
  const pointer = issue.path === '' ? '' : `${issue.path}: `;
  return `${where}${pointer}${issue.message}`;
}
