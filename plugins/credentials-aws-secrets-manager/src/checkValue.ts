import { WorkerManagerError, type SecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** Map keys become environment variable or file names when a secret is mounted. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

/**
 * The SecretString a payload is stored as: a string as is, a key/value map as its JSON (the form the AWS console and
 * rotation templates use). Checks format and size first; errors describe the value's shape, never its content.
 */
export function toSecretString(value: unknown, config: Pick<ResolvedConfig, 'maxValueBytes' | 'maxKeys'>, name: string): string {
  const invalid = (why: string, details: Record<string, unknown> = {}): WorkerManagerError =>
    new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${name}': ${why}`, { details: { name, ...details } });
  let text: string;
  if (typeof value === 'string') {
    if (value.length === 0) throw invalid('the value is empty');
    if (value.includes('\u0000')) throw invalid('the value contains a NUL character');
    text = value;
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) throw invalid('the key/value map is empty');
    if (entries.length > config.maxKeys) throw invalid(`the key/value map has ${entries.length} keys, more than ${config.maxKeys}`, { keys: entries.length, maxKeys: config.maxKeys });
    // An invalid key is not echoed: it may be a value pasted in the wrong place.
    const badKey = entries.findIndex(([k]) => !KEY.test(k));
    if (badKey >= 0) throw invalid(`key number ${badKey + 1} is not a valid name (1-128 letters, digits, _ . -, starting with a letter or _)`, { keyIndex: badKey });
    const badValue = entries.find(([, v]) => typeof v !== 'string' || v.includes('\u0000'));
    if (badValue !== undefined) throw invalid(`the value of key '${badValue[0]}' is not a string without NUL characters`, { key: badValue[0] });
    text = JSON.stringify(value);
  } else {
    throw invalid('the value is neither a string nor a key/value map of strings');
  }
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > config.maxValueBytes) {
    throw new WorkerManagerError('WM_ERR_SECRET_SIZE_LIMIT', `secret '${name}' is ${bytes} bytes, more than the limit of ${config.maxValueBytes}`, {
      details: { name, bytes, maxValueBytes: config.maxValueBytes },
    });
  }
  return text;
}

/**
 * The payload of a stored version. A SecretString that is a JSON object of strings is a key/value map (as the console
 * writes it); anything else is a string. SecretBinary comes back base64-encoded.
 */
export function fromStored(secretString: string | undefined, secretBinary: Uint8Array | undefined): SecretPayload | undefined {
  if (secretString !== undefined) {
    if (secretString.startsWith('{')) {
      try {
        const parsed: unknown = JSON.parse(secretString);
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
          const entries = Object.entries(parsed);
          if (entries.length > 0 && entries.every(([k, v]) => k.length > 0 && typeof v === 'string')) return parsed as Record<string, string>;
        }
      } catch {
        // Not JSON: a plain string that happens to start with a brace.
      }
    }
    return secretString;
  }
  if (secretBinary !== undefined) return Buffer.from(secretBinary).toString('base64');
  return undefined;
}
