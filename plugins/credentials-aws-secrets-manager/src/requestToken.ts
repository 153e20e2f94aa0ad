import { createHash, randomUUID } from 'node:crypto';

/**
 * The ClientRequestToken (and so the VersionId) of a write. A caller's `requestToken` (8-64 characters) maps
 * deterministically to a UUID-shaped 36-character token, inside AWS's 32-64 range, so a retried call names the same
 * version and AWS's own idempotency applies; without one, a fresh UUID.
 */
export function clientRequestToken(requestToken: string | undefined): string {
  if (requestToken === undefined) return randomUUID();
  const hex = createHash('sha256').update(`worker-manager/requestToken\u0000${requestToken}`).digest('hex');
  // Version nibble 8 and the RFC 9562 variant bits: a valid "custom" UUID, recognisably derived.
  const variant = ((parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
