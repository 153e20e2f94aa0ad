import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic, type SecretVersionStatus } from '@worker-manager/plugin-sdk';
import type { Sealed, ScryptParams } from './storeCrypto.ts';
import { storeError } from './storeError.ts';

/** Identifies the file format; a file with anything else here is not ours (or is damaged). */
export const STORE_FORMAT = 'wm-credentials-simple/1';

/**
 * The write that made a version, when it carried a request token (capability `secret.write.idempotent`): keyed digests
 * only (`requestDigest`), never the token or the value. It lives and is pruned with its version, so it stays bounded.
 */
export interface StoredRequest {
  op: 'put' | 'pending';
  /** Digest of the secret name and the token. */
  token: string;
  /** Digest of the name, the token and the value; absent when the plugin generated the value. */
  value?: string;
}

/** One stored version: metadata in clear, the value only as AES-256-GCM ciphertext (dropped once revoked). */
export interface StoredVersion {
  version: string;
  status: SecretVersionStatus;
  stages: string[];
  createdAt: string;
  updatedAt: string;
  sealed?: Sealed;
  request?: StoredRequest;
}

/** One secret and its versions, oldest first. */
export interface StoredSecret {
  createdAt: string;
  nextVersion: number;
  versions: StoredVersion[];
}

/** Everything the store file holds. */
export interface StoreBody {
  kdf: ScryptParams;
  keyCheck: Sealed;
  secrets: Record<string, StoredSecret>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isSealed = (v: unknown): v is Sealed => isObject(v) && isString(v['salt']) && isString(v['nonce']) && isString(v['ciphertext']) && isString(v['tag']);
const STATUSES = new Set(['active', 'pending', 'deprecated', 'revoked']);

function isRequest(v: unknown): v is StoredRequest {
  return isObject(v) && (v['op'] === 'put' || v['op'] === 'pending') && isString(v['token']) && (v['value'] === undefined || isString(v['value']));
}

function isVersion(v: unknown): v is StoredVersion {
  return (
    isObject(v) &&
    isString(v['version']) &&
    isString(v['status']) &&
    STATUSES.has(v['status']) &&
    Array.isArray(v['stages']) &&
    v['stages'].every(isString) &&
    isString(v['createdAt']) &&
    isString(v['updatedAt']) &&
    (v['sealed'] === undefined ? v['status'] === 'revoked' : isSealed(v['sealed'])) &&
    (v['request'] === undefined || isRequest(v['request']))
  );
}

function isBody(v: unknown): v is StoreBody {
  if (!isObject(v) || !isSealed(v['keyCheck']) || !isObject(v['secrets'])) return false;
  const kdf = v['kdf'];
  if (!isObject(kdf) || !isString(kdf['salt']) || !Number.isInteger(kdf['cost']) || !Number.isInteger(kdf['blockSize']) || !Number.isInteger(kdf['parallelization'])) return false;
  return Object.values(v['secrets']).every(
    (s) => isObject(s) && isString(s['createdAt']) && Number.isInteger(s['nextVersion']) && Array.isArray(s['versions']) && s['versions'].every(isVersion),
  );
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Reads and checks the store file: undefined when it does not exist yet; WM_ERR_CONFIGURATION `corrupt-store` when it
 * is truncated, altered or not ours. A checksum over the body catches any damaged byte before decryption is tried,
 * so damage is never mistaken for a wrong key and a damaged store never reads as empty.
 */
export async function readStore(file: string): Promise<StoreBody | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storeError('corrupt-store', `credential store ${file} cannot be read`, { file, errno: (cause as NodeJS.ErrnoException).code ?? null }, cause);
  }
  const corrupt = (why: string): Error => storeError('corrupt-store', `credential store ${file} is corrupt (${why}); it was left untouched`, { file, why });
  let outer: unknown;
  try {
    outer = JSON.parse(text);
  } catch {
    throw corrupt('not JSON: truncated or damaged');
  }
  if (!isObject(outer) || outer['format'] !== STORE_FORMAT || !isString(outer['sha256']) || !isString(outer['body'])) throw corrupt('unknown format');
  if (sha256(outer['body']) !== outer['sha256']) throw corrupt('checksum mismatch');
  let body: unknown;
  try {
    body = JSON.parse(outer['body']);
  } catch {
    throw corrupt('body is not JSON');
  }
  if (!isBody(body)) throw corrupt('unexpected structure');
  return body;
}

/**
 * Replaces the store file atomically and durably: a temporary file in the same folder is written and fsynced, renamed
 * over the store, then the folder is fsynced so the rename itself survives a crash. Readers see the old or the new
 * file, never a mix.
 */
export async function writeStore(file: string, body: StoreBody): Promise<void> {
  const text = JSON.stringify(body);
  const content = `${JSON.stringify({ format: STORE_FORMAT, sha256: sha256(text), body: text })}\n`;
  await writeFileAtomic(file, content, { mode: 0o600 });
}
