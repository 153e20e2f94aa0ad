import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import { pointerSegments } from './SourcePosition.ts';

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

const INTEGER = /^[-+]?\d+$/;
const DECIMAL = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const BOOLEANS: Record<string, boolean> = { true: true, True: true, TRUE: true, false: false, False: false, FALSE: false };

function expandUnions(schemas: unknown[]): Json[] {
  const out: Json[] = [];
  const visit = (schema: unknown): void => {
    if (!isRecord(schema)) return;
    const branches = [schema.anyOf, schema.oneOf].find(Array.isArray);
    if (branches !== undefined) branches.forEach(visit);
    else out.push(schema);
  };
  schemas.forEach(visit);
  return out;
}

/** The schemas that may apply to the node at `segments` (several when unions are on the way). */
function schemasAt(schema: unknown, segments: string[]): Json[] {
  let current = expandUnions([schema]);
  for (const segment of segments) {
    const next: unknown[] = [];
    for (const s of current) {
      if (isRecord(s.properties) && Object.hasOwn(s.properties, segment)) {
        next.push(s.properties[segment]);
        continue;
      }
      let matched = false;
      if (isRecord(s.patternProperties)) {
        for (const [pattern, sub] of Object.entries(s.patternProperties)) {
          if (new RegExp(pattern, 'u').test(segment)) {
            next.push(sub);
            matched = true;
          }
        }
      }
      if (!matched && isRecord(s.additionalProperties)) next.push(s.additionalProperties);
      if (isRecord(s.items) && /^\d+$/.test(segment)) next.push(s.items);
    }
    current = expandUnions(next);
  }
  return current;
}

function typesOf(schema: Json): string[] | undefined {
  if (typeof schema.type === 'string') return [schema.type];
  if (Array.isArray(schema.type)) return schema.type.map(String);
  return undefined;
}

function accepts(schema: Json, value: unknown): boolean {
  try {
    return Value.Check(schema as TSchema, value);
  } catch {
    return false;
  }
}

function candidates(text: string): Array<{ type: string; value: number | boolean }> {
  const out: Array<{ type: string; value: number | boolean }> = [];
  if (INTEGER.test(text) && Number.isSafeInteger(Number(text))) out.push({ type: 'integer', value: Number(text) });
  if (DECIMAL.test(text)) out.push({ type: 'number', value: Number(text) });
  if (Object.hasOwn(BOOLEANS, text)) out.push({ type: 'boolean', value: BOOLEANS[text] as boolean });
  return out;
}

function convert(text: string, schemas: Json[]): unknown {
  // Text the schema accepts stays text: `password: ${PW}` must stay "12345", not become 12345.
  if (schemas.length === 0 || schemas.some((s) => accepts(s, text))) return text;
  // Otherwise the type decides, not the other constraints: `threads: ${T}` with T=0 must fail as "must be >= 1",
  // not as "expected integer, found string".
  for (const candidate of candidates(text)) {
    const wanted = (s: Json): boolean => {
      const types = typesOf(s);
      return types !== undefined && (types.includes(candidate.type) || (candidate.type === 'integer' && types.includes('number')));
    };
    if (schemas.some(wanted)) return candidate.value;
  }
  return text;
}

/**
 * Converts scalars that were written entirely as one `${...}` to numbers or booleans where `schema` does not accept
 * the text as a string but wants an integer, a number or a boolean there, and the text is one (decimal digits, a
 * decimal number, `true`/`false`). Anything else stays a string and fails validation with a clear message. Works in
 * place; returns the (possibly replaced) value.
 *
 * `value` sits at `basePointer` in the config; `envScalars` is `LoadedConfig.envScalars`. The loader runs this for
 * the host schema; the registry runs it with a plugin's `configSchema` on each instance `config` before validating.
 */
export function convertEnvScalars(schema: unknown, value: unknown, basePointer: string, envScalars: Iterable<string>): unknown {
  let root = value;
  for (const pointer of envScalars) {
    if (pointer !== basePointer && !pointer.startsWith(`${basePointer}/`)) continue;
    const segments = pointerSegments(pointer.slice(basePointer.length));
    if (segments === undefined) continue;
    if (segments.length === 0) {
      if (typeof root === 'string') root = convert(root, schemasAt(schema, []));
      continue;
    }
    let parent: unknown = root;
    for (const segment of segments.slice(0, -1)) {
      parent = Array.isArray(parent) || isRecord(parent) ? (parent as Json)[segment] : undefined;
    }
    const last = segments.at(-1) as string;
    if (!(Array.isArray(parent) || isRecord(parent)) || !Object.hasOwn(parent, last)) continue;
    const current = (parent as Json)[last];
    if (typeof current !== 'string') continue;
    (parent as Json)[last] = convert(current, schemasAt(schema, segments));
  }
  return root;
}
