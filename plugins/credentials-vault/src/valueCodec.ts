import { WorkerManagerError, type SecretPayload } from '@worker-manager/plugin-sdk';

/** KV v2 stores maps only: a string value is kept under this key. */
export const STRING_KEY = 'wm:value';
/** The requestToken of the write that made the version, kept in the version itself so the token and data land together. */
export const TOKEN_KEY = 'wm:request-token';
const RESERVED = 'wm:';

function invalid(name: string, why: string, details: Record<string, unknown> = {}): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${name}': ${why}`, { details: { name, ...details } });
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
