import { createCipheriv, createDecipheriv, createHmac, hkdf, randomBytes, scrypt } from 'node:crypto';
import { promisify } from 'node:util';

const hkdfAsync = promisify(hkdf);

/** scrypt parameters, kept in the store so a store stays readable when the config's defaults change. */
export interface ScryptParams {
  salt: string;
  cost: number;
  blockSize: number;
  parallelization: number;
}

/** One AES-256-GCM sealed value; every field is base64. */
export interface Sealed {
  salt: string;
  nonce: string;
  ciphertext: string;
  tag: string;
}

const VALUE_INFO = 'wm-credentials-simple/value/v1';
const CHECK_INFO = 'wm-credentials-simple/key-check/v1';
const REQUEST_INFO = 'wm-credentials-simple/request/v1';
const CHECK_PLAINTEXT = Buffer.from('wm-credentials-simple key check', 'utf8');

/** Fresh scrypt parameters with a random salt, for a new store. */
export function newScryptParams(p: { cost: number; blockSize: number; parallelization: number }): ScryptParams {
  return { salt: randomBytes(16).toString('base64'), ...p };
}

/**
 * The store key: scrypt over the key material with the store's salt. Async, so a high cost never blocks the thread's
 * event loop (the host would take a silent thread for a hung one).
 */
export function deriveStoreKey(material: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(material, Buffer.from(p.salt, 'base64'), 32, { N: p.cost, r: p.blockSize, p: p.parallelization, maxmem: 256 * p.cost * p.blockSize + 16 * 1024 * 1024 }, (error, key) =>
      error === null ? resolve(key) : reject(error),
    );
  });
}

/** Each value gets its own key (HKDF with a random salt), so no (key, nonce) pair ever repeats across values. */
async function subKey(storeKey: Buffer, salt: Buffer, info: string): Promise<Buffer> {
  return Buffer.from(await hkdfAsync('sha256', storeKey, salt, info, 32));
}

async function seal(storeKey: Buffer, plaintext: Buffer, aad: Buffer, info: string): Promise<Sealed> {
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', await subKey(storeKey, salt, info), nonce);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { salt: salt.toString('base64'), nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

/** Opens a sealed value; undefined when the GCM tag does not verify (wrong key or altered bytes). */
async function open(storeKey: Buffer, sealed: Sealed, aad: Buffer, info: string): Promise<Buffer | undefined> {
  try {
    const decipher = createDecipheriv('aes-256-gcm', await subKey(storeKey, Buffer.from(sealed.salt, 'base64'), info), Buffer.from(sealed.nonce, 'base64'));
    decipher.setAAD(aad);
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Binds a ciphertext to its secret and version, so it cannot be moved to another one. */
const valueAad = (name: string, version: string): Buffer => Buffer.from(`${name}\u0000${version}`, 'utf8');

/** Encrypts a value for one secret version. */
export function sealValue(storeKey: Buffer, name: string, version: string, plaintext: Buffer): Promise<Sealed> {
  return seal(storeKey, plaintext, valueAad(name, version), VALUE_INFO);
}

/** Decrypts a value of one secret version; undefined when it does not authenticate. */
export function openValue(storeKey: Buffer, name: string, version: string, sealed: Sealed): Promise<Buffer | undefined> {
  return open(storeKey, sealed, valueAad(name, version), VALUE_INFO);
}

/** A known plaintext sealed under the store key: tells "wrong key" apart from "altered value". */
export function sealKeyCheck(storeKey: Buffer): Promise<Sealed> {
  return seal(storeKey, CHECK_PLAINTEXT, Buffer.alloc(0), CHECK_INFO);
}

/** True when the key check opens to the known plaintext. */
export async function verifyKeyCheck(storeKey: Buffer, sealed: Sealed): Promise<boolean> {
  const plain = await open(storeKey, sealed, Buffer.alloc(0), CHECK_INFO);
  return plain !== undefined && plain.equals(CHECK_PLAINTEXT);
}

/**
 * A keyed digest (HMAC-SHA256 under a key of its own derived from the store key) of a write request's parts: it lets a
 * retried write be recognised from the file without keeping the request token or the value in clear, and without
 * giving anyone who lacks the key a way to test guesses against it.
 */
export async function requestDigest(storeKey: Buffer, parts: readonly string[]): Promise<string> {
  const key = await subKey(storeKey, Buffer.alloc(0), REQUEST_INFO);
  const mac = createHmac('sha256', key);
  // Length-prefixed, so no two different part lists feed the MAC the same bytes.
  for (const part of parts) {
    const bytes = Buffer.from(part, 'utf8');
    mac.update(`${bytes.length}:`).update(bytes);
  }
  return mac.digest('base64');
}
