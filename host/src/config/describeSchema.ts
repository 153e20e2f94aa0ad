import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HostConfig } from './schema.ts';

/** One documented field of a schema. */
export interface FieldDoc {
  /** Dotted path, `[]` for list items: `plugins[].limits.heapMb`. */
  path: string;
  type: string;
  /** The default as JSON, `required`, or `none` for an optional field without default. */
  default: string;
  description: string;
}

/** One object of the schema with its direct fields, in schema order. */
export interface ObjectDoc {
  path: string;
  description: string;
  fields: FieldDoc[];
}

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function literal(value: unknown): string {
  return JSON.stringify(value);
}

function range(schema: Json): string {
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) return ` ${min} to ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

/** A short human type: `integer >= 1`, `"trusted" | "restricted"`, `map of string`, `list of object`. */
export function describeSchemaType(schema: unknown): string {
  if (!isRecord(schema)) return 'any';
  const branches = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(branches)) return branches.map(describeSchemaType).join(' | ');
  if ('const' in schema) return literal(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map(literal).join(' | ');
  switch (schema.type) {
    case 'integer':
    case 'number':
      return `${schema.type}${range(schema)}`;
    case 'string': {
      if (typeof schema.pattern === 'string') return `string matching \`${schema.pattern}\``;
      return schema.minLength === 1 ? 'non-empty string' : 'string';
    }
    case 'boolean':
      return 'boolean';
    case 'array':
      return `list of ${describeSchemaType(schema.items)}`;
    case 'object': {
      if (isRecord(schema.properties)) return 'object';
      const keys = isRecord(schema.propertyNames) && typeof schema.propertyNames.pattern === 'string'
        ? ` (keys matching \`${schema.propertyNames.pattern}\`)`
        : '';
      const values = isRecord(schema.patternProperties) ? Object.values(schema.patternProperties) : [schema.additionalProperties];
      return `map of ${values.map(describeSchemaType).join(' | ')}${keys}`;
    }
    default:
      return 'any';
  }
}

/** Every object of a schema (the root first, then nested objects and list items depth-first) with its fields. */
export function describeSchema(schema: unknown, path = ''): ObjectDoc[] {
  if (!isRecord(schema) || !isRecord(schema.properties)) return [];
  const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
  const doc: ObjectDoc = { path, description: typeof schema.description === 'string' ? schema.description : '', fields: [] };
  const nested: ObjectDoc[] = [];
  for (const [name, field] of Object.entries(schema.properties)) {
    if (!isRecord(field)) continue;
    const fieldPath = path === '' ? name : `${path}.${name}`;
    doc.fields.push({
      path: fieldPath,
      type: describeSchemaType(field),
      default: 'default' in field ? literal(field.default) : required.has(name) ? 'required' : 'none',
      description: typeof field.description === 'string' ? field.description : '',
    });
    if (field.type === 'object') nested.push(...describeSchema(field, fieldPath));
    if (field.type === 'array') nested.push(...describeSchema(field.items, `${fieldPath}[]`));
  }
  return [doc, ...nested];
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The generated part of docs/configuration.md: one table per object of the host config schema. */
export function renderConfigReference(schema: unknown = HostConfig): string {
  const out: string[] = [];
  for (const object of describeSchema(schema)) {
    out.push(object.path === '' ? '### Top level' : `### \`${object.path}\``, '');
    if (object.description !== '') out.push(object.description, '');
    out.push('| Field | Type | Default | Description |', '|---|---|---|---|');
    for (const f of object.fields) {
      const defaultCell = f.default === 'required' || f.default === 'none' ? f.default : `\`${cell(f.default)}\``;
      out.push(`| \`${f.path}\` | ${cell(f.type)} | ${defaultCell} | ${cell(f.description)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

export const REFERENCE_START = '<!-- BEGIN GENERATED: config reference (npx tsx host/src/config/describeSchema.ts) -->';
export const REFERENCE_END = '<!-- END GENERATED: config reference -->';

/** Replaces the generated section of a document with the current reference. */
export function spliceConfigReference(document: string, reference: string = renderConfigReference()): string {
  const start = document.indexOf(REFERENCE_START);
  const end = document.indexOf(REFERENCE_END);
  if (start === -1 || end < start) throw new Error('docs/configuration.md has lost its generated-section markers');
  return `${document.slice(0, start + REFERENCE_START.length)}\n\n${reference}\n${document.slice(end)}`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const docUrl = new URL('../../../docs/configuration.md', import.meta.url);
  writeFileSync(docUrl, spliceConfigReference(readFileSync(docUrl, 'utf8')));
}
