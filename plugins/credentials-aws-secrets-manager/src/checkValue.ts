import { checkSecretPayload, type SecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/**
 * The SecretString a payload is stored as: a string as is, a key/value map as its JSON (the form the AWS console and
 * rotation templates use). Checks format and size first; errors describe the value's shape, never its content.
 */
export function toSecretString(value: unknown, config: Pick<ResolvedConfig, 'maxValueBytes' | 'maxKeys'>, name: string): string {
  checkSecretPayload(value, config, name);
  return typeof value === 'string' ? value : JSON.stringify(value);
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
