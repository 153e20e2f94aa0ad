import { WorkerManagerError, type SecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** Map keys become environment variable or file names when a secret is mounted; `:` is left for the plugin's keys. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/** KV v2 stores maps only: a string value is kept under this key. */
export const STRING_KEY = 'wm:value';
/** The requestToken of the write that made the version, kept in the version itself so the token and data land together. */
export const TOKEN_KEY = 'wm:request-token';
const RESERVED = 'wm:';

function invalid(name: string, why: string, details: Record<string, unknown> = {}): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${name}': ${why}`, { details: { name, ...details } });
}

/**
 * Enforces the instance's format and size limits. Errors describe the value's shape (sizes, offending key names),
 * never its content.
 */
export function checkValue(value: unknown, config: Pick<ResolvedConfig, 'maxValueBytes' | 'maxKeys'>, name: string): asserts value is SecretPayload {
  let bytes: number;
  if (typeof value === 'string') {
    if (value.length === 0) throw invalid(name, 'the value is empty');
    if (value.includes('\u0000')) throw invalid(name, 'the value contains a NUL character');
    bytes = Buffer.byteLength(value, 'utf8');
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) throw invalid(name, 'the key/value map is empty');
    if (entries.length > config.maxKeys) throw invalid(name, `the key/value map has ${entries.length} keys, more than ${config.maxKeys}`, { keys: entries.length, maxKeys: config.maxKeys });
    // An invalid key is not echoed: it may be a value pasted in the wrong place.
    const badKey = entries.findIndex(([k]) => !KEY.test(k));
    if (badKey >= 0) throw invalid(name, `key number ${badKey + 1} is not a valid name (1-128 letters, digits, _ . -, starting with a letter or _)`, { keyIndex: badKey });
    const badValue = entries.find(([, v]) => typeof v !== 'string' || v.includes('\u0000'));
    if (badValue !== undefined) throw invalid(name, `the value of key '${badValue[0]}' is not a string without NUL characters`, { key: badValue[0] });
    bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  } else {
    throw invalid(name, 'the value is neither a string nor a key/value map of strings');
  }
  if (bytes > config.maxValueBytes) {
    throw new WorkerManagerError('WM_ERR_SECRET_SIZE_LIMIT', `secret '${name}' is ${bytes} bytes, more than the limit of ${config.maxValueBytes}`, {
      details: { name, bytes, maxValueBytes: config.maxValueBytes },
    });
  }
}

/** The KV v2 `data` of a value: a map as it is, a string under {@link STRING_KEY}; the request token beside it. */
export function encodeValue(value: SecretPayload, requestToken: string | undefined): Record<string, string> {
  const data: Record<string, string> = typeof value === 'string' ? { [STRING_KEY]: value } : { ...value };
  if (requestToken !== undefined) data[TOKEN_KEY] = requestToken;
  return data;
}

/**
 * The value a version holds. A map written by an operator (`vault kv put`) reads as that map; keys of the plugin
 * (`wm:`) are dropped. Errors name the offending key, never a value.
 */
export function decodeValue(data: Record<string, unknown> | null, name: string, version: number): { value: SecretPayload; requestToken: string | undefined } {
  const entries = Object.entries(data ?? {});
  const token = data?.[TOKEN_KEY];
  const requestToken = typeof token === 'string' ? token : undefined;
  const str = data?.[STRING_KEY];
  if (typeof str === 'string') return { value: str, requestToken };
  const map: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (k.startsWith(RESERVED)) continue;
    if (typeof v !== 'string') throw invalid(name, `version ${version} holds a ${v === null ? 'null' : typeof v} under key '${k}'; only string values can be read`, { version: String(version), key: k });
    map[k] = v;
  }
  if (Object.keys(map).length === 0) throw invalid(name, `version ${version} holds no value`, { version: String(version) });
  return { value: map, requestToken };
}

/** Same value, whatever the key order. */
export function sameValue(a: SecretPayload, b: SecretPayload): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
