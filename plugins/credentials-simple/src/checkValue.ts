import { WorkerManagerError, type SecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** Map keys become environment variable or file names when a secret is mounted. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Enforces the instance's format and size limits. Errors describe the value's shape (sizes, offending key names),
 * never its content.
 */
export function checkValue(value: unknown, config: Pick<ResolvedConfig, 'maxValueBytes' | 'maxKeys'>, name: string): asserts value is SecretPayload {
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
    if (entries.length > config.maxKeys) throw invalid(`the key/value map has ${entries.length} keys, more than ${config.maxKeys}`, { keys: entries.length, maxKeys: config.maxKeys });
    // An invalid key is not echoed: it may be a value pasted in the wrong place.
    const badKey = entries.findIndex(([k]) => !KEY.test(k));
    if (badKey >= 0) throw invalid(`key number ${badKey + 1} is not a valid name (1-128 letters, digits, _ . -, starting with a letter or _)`, { keyIndex: badKey });
    const badValue = entries.find(([, v]) => typeof v !== 'string' || v.includes('\u0000'));
    if (badValue !== undefined) throw invalid(`the value of key '${badValue[0]}' is not a string without NUL characters`, { key: badValue[0] });
    bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  } else {
    throw invalid('the value is neither a string nor a key/value map of strings');
  }
  if (bytes > config.maxValueBytes) {
    throw new WorkerManagerError('WM_ERR_SECRET_SIZE_LIMIT', `secret '${name}' is ${bytes} bytes, more than the limit of ${config.maxValueBytes}`, {
      details: { name, bytes, maxValueBytes: config.maxValueBytes },
    });
  }
}
