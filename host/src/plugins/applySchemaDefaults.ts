type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Fills in `default`s of a plain JSON Schema (a plugin's configSchema read from package.json). typebox's
 * `Value.Default` only understands schemas built with typebox in this process, so the registry needs its own.
 * Covers what config schemas use: object properties (recursively, including defaults that are themselves objects),
 * array `items` and `allOf`. Union branches are left alone: which branch applies is not known before validation.
 * Returns a new value; the input is not changed.
 */
export function applySchemaDefaults(schema: unknown, value: unknown): unknown {
  if (!isRecord(schema)) return value;
  let out = value;
  if (out === undefined && 'default' in schema) out = structuredClone(schema['default']);
  if (Array.isArray(schema['allOf'])) for (const sub of schema['allOf']) out = applySchemaDefaults(sub, out);
  if (isRecord(out) && isRecord(schema['properties'])) {
    const copy: Json = { ...out };
    for (const [key, sub] of Object.entries(schema['properties'])) {
      const next = applySchemaDefaults(sub, copy[key]);
      if (next !== undefined) copy[key] = next;
    }
    out = copy;
  }
  if (Array.isArray(out) && isRecord(schema['items'])) {
    const items = schema['items'];
    out = out.map((item) => applySchemaDefaults(items, item));
  }
  return out;
}
