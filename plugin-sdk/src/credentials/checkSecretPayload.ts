import type { SecretPayload } from '../contracts/credentialProvider.ts';
import { WorkerManagerError } from '../errors/WorkerManagerError.ts';

/** Map keys become environment variable or file names when a secret is mounted. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/** The format limits of {@link checkSecretPayload}: a credential plugin's own, from its config. */
export interface SecretPayloadLimits {
  /** Largest value in UTF-8 bytes (a map counts as its JSON). */
  maxValueBytes: number;
  /** Most keys of a key/value map. */
  maxKeys: number;
}

/**
 * Checks a value a credential plugin is asked to store: a non-empty string without NUL, or a non-empty key/value map
 * of such strings whose keys are valid env/file names, within `limits`. `WM_ERR_SECRET_INVALID_FORMAT` or
 * `WM_ERR_SECRET_SIZE_LIMIT` otherwise; the errors describe the value's shape (sizes, key positions, a valid key's
 * name), never its content, and never echo an invalid key (it may be a value pasted in the wrong place).
 */
export function checkSecretPayload(value: unknown, limits: SecretPayloadLimits, name: string): asserts value is SecretPayload {
  const invalid = (why: string, details: Record<string, unknown> = {}): WorkerManagerError =>
    new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${name}': ${why}`, { details: { name, ...details } });
  let bytes: number;
  if (typeof value === 'string') {
    if (value.length === 0) throw invalid('the value is empty');
    if (value.includes('\u0000')) throw invalid('the value contains a NUL character');
    bytes = Buffer.byteLength(value, 'utf8');
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) throw invalid('the key/value map is empty');
    if (entries.length > limits.maxKeys) throw invalid(`the key/value map has ${entries.length} keys, more than ${limits.maxKeys}`, { keys: entries.length, maxKeys: limits.maxKeys });
    const badKey = entries.findIndex(([k]) => !KEY.test(k));
    if (badKey >= 0) throw invalid(`key number ${badKey + 1} is not a valid name (1-128 letters, digits, _ . -, starting with a letter or _)`, { keyIndex: badKey });
    const badValue = entries.find(([, v]) => typeof v !== 'string' || v.includes('\u0000'));
    if (badValue !== undefined) throw invalid(`the value of key '${badValue[0]}' is not a string without NUL characters`, { key: badValue[0] });
    bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  } else {
    throw invalid('the value is neither a string nor a key/value map of strings');
  }
  if (bytes > limits.maxValueBytes) {
    throw new WorkerManagerError('WM_ERR_SECRET_SIZE_LIMIT', `secret '${name}' is ${bytes} bytes, more than the limit of ${limits.maxValueBytes}`, {
      details: { name, bytes, maxValueBytes: limits.maxValueBytes },
    });
  }
}
