import Type, { type Static } from 'typebox';

/**
 * Largest plaintext of one transit call, in bytes: what a secret stored encrypted elsewhere needs (a credential, a
 * data key, a small document), and small enough to cross the thread boundary and a Vault request comfortably.
 */
export const MAX_TRANSIT_PLAINTEXT_BYTES = 64 * 1024;

/** Longest ciphertext a transit call takes or returns, in characters: room for a backend's own framing around the base64. */
export const MAX_TRANSIT_CIPHERTEXT_LENGTH = 128 * 1024;

// Standard base64 with its padding; the empty string is the empty plaintext.
const BASE64 = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

/**
 * The name of an encryption key the store holds (Vault transit: the key under `<mount>/keys/`). One path segment:
 * letters, digits, `_`, `-` and `.`, starting with a letter, digit or `_`.
 */
export const TransitKeyName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$', description: 'name of an encryption key in the store' });
/** Transit key name. */
export type TransitKeyName = Static<typeof TransitKeyName>;

/**
 * Bytes to encrypt, or that a decrypt gave back, as standard base64 (padded). A plugin never logs it, never puts it in
 * an error, and never stores it.
 */
export const TransitPlaintext = Type.String({
  maxLength: Math.ceil(MAX_TRANSIT_PLAINTEXT_BYTES / 3) * 4,
  pattern: BASE64,
  description: 'the bytes as standard base64, at most 64 KiB decoded; never logged or stored',
});
/** Base64 plaintext. */
export type TransitPlaintext = Static<typeof TransitPlaintext>;

/**
 * A ciphertext as `encrypt` or `rewrap` returned it, opaque to the host (Vault: `vault:v<N>:<base64>`, N the key version
 * that made it). Keep it wherever the secret lives; only the store that made it can open it.
 */
export const TransitCiphertext = Type.String({ minLength: 1, maxLength: MAX_TRANSIT_CIPHERTEXT_LENGTH, description: 'ciphertext as encrypt or rewrap returned it; opaque' });
/** Transit ciphertext. */
export type TransitCiphertext = Static<typeof TransitCiphertext>;

/** A key version, counted from 1 (each `rotateKey` adds one). */
const KeyVersion = Type.Integer({ minimum: 1, description: 'version of the key, from 1' });

/** Params of `encrypt`: the key and the plaintext. */
export const TransitEncryptParams = Type.Object({ key: TransitKeyName, plaintext: TransitPlaintext }, { additionalProperties: false });
/** Params of `decrypt` and `rewrap`: the key and a ciphertext it made. */
export const TransitCiphertextParams = Type.Object({ key: TransitKeyName, ciphertext: TransitCiphertext }, { additionalProperties: false });
/** Params of `rotateKey`. */
export const TransitKeyParams = Type.Object({ key: TransitKeyName }, { additionalProperties: false });

/** What `encrypt` and `rewrap` answer: the ciphertext and the key version that made it (the latest one). */
export const TransitSealed = Type.Object({ ciphertext: TransitCiphertext, keyVersion: KeyVersion }, { additionalProperties: false });
/** Sealed data. */
export type TransitSealed = Static<typeof TransitSealed>;

/** What `decrypt` answers. */
export const TransitOpened = Type.Object({ plaintext: TransitPlaintext }, { additionalProperties: false });
/** Opened data. */
export type TransitOpened = Static<typeof TransitOpened>;

/** What `rotateKey` answers: the key's version after the rotation, which every later `encrypt` and `rewrap` uses. */
export const TransitRotated = Type.Object({ latestVersion: KeyVersion }, { additionalProperties: false });
/** Rotated key. */
export type TransitRotated = Static<typeof TransitRotated>;
