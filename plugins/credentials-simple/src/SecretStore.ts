import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { WorkerManagerError, type CredentialHandlers, type PluginLogger, type SecretPayload, type SecretValue, type SecretVersion, checkSecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import { withFileLock } from './fileLock.ts';
import { deriveStoreKey, newScryptParams, openValue, sealKeyCheck, sealValue, verifyKeyCheck, type ScryptParams } from './storeCrypto.ts';
import { storeError } from './storeError.ts';
import { readStore, writeStore, type StoreBody, type StoredSecret, type StoredVersion } from './storeFile.ts';
import { replayedVersion, writeRequest } from './writeRequest.ts';

/** Stages a caller may name instead of a version id (AWSCURRENT, AWSPREVIOUS, AWSPENDING). */
const STAGES = new Set(['current', 'previous', 'pending']);

const now = (): string => new Date().toISOString();

/** Metadata of a version as the contract shows it; never the value. */
function publicVersion(v: StoredVersion): SecretVersion {
  return { version: v.version, status: v.status, stages: [...v.stages], createdAt: v.createdAt };
}

/**
 * The file-backed store behind the plugin's handlers. Every read re-reads the file (another thread may have written
 * it); every write is a read-modify-write under the store lock, after the file and the key have been verified, so a
 * wrong key or a damaged file refuses the write instead of replacing the store.
 */
export class SecretStore {
  readonly #config: ResolvedConfig;
  readonly #file: string;
  readonly #lockFile: string;
  readonly #material: Buffer;
  readonly #logger: PluginLogger;
  readonly #keys = new Map<string, Promise<Buffer>>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(config: ResolvedConfig, stateDir: string, material: Buffer, logger: PluginLogger) {
    this.#config = config;
    this.#file = path.join(stateDir, config.storeFile);
    this.#lockFile = `${this.#file}.lock`;
    this.#material = material;
    this.#logger = logger;
  }

  /** The contract handlers. */
  handlers(): CredentialHandlers {
    return {
      getSecret: ({ name, version }) => this.getSecret(name, version),
      listVersions: async ({ name }) => this.#secret((await this.#readVerified()).body, name).versions.map(publicVersion),
      describe: async ({ name }) => {
        const secret = this.#secret((await this.#readVerified()).body, name);
        const current = secret.versions.find((v) => v.stages.includes('current'));
        return { name, ...(current === undefined ? {} : { currentVersion: current.version }), versions: secret.versions.length };
      },
      putSecret: ({ name, value, requestToken }) => this.putSecret(name, value, requestToken),
      createPendingVersion: ({ name, value, requestToken }) => this.createPendingVersion(name, value, requestToken),
      testVersion: ({ name, version }) => this.testVersion(name, version),
      promoteVersion: ({ name, version }) => this.promoteVersion(name, version),
      revokeVersion: ({ name, version }) => this.revokeVersion(name, version),
    };
  }

  async getSecret(name: string, version: string | undefined): Promise<SecretValue> {
    const { body, key } = await this.#readVerified();
    const v = this.#version(body, name, version ?? 'current');
    if (v.status === 'revoked' || v.sealed === undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' version ${v.version} is revoked`, {
        details: { name, version: v.version, status: v.status },
      });
    }
    return { name, version: v.version, value: await this.#decrypt(key as Buffer, name, v) };
  }

  /** With `requestToken`, a retry of the same write answers the version the first call made (secret.write.idempotent). */
  putSecret(name: string, value: SecretPayload, requestToken?: string): Promise<SecretVersion> {
    checkSecretPayload(value, this.#config, name);
    return this.#mutate(async (body, key) => {
      const request = requestToken === undefined ? undefined : await writeRequest(key, name, 'put', requestToken, value);
      const replay = request === undefined ? undefined : replayedVersion(this.#own(body, name), name, request);
      if (replay !== undefined) return { result: publicVersion(replay), changed: false };
      const secret = (body.secrets[name] ??= { createdAt: now(), nextVersion: 1, versions: [] });
      const added = await this.#addVersion(secret, key, name, value, 'active');
      if (request !== undefined) added.request = request;
      this.#makeCurrent(secret, added);
      this.#prune(secret);
      this.#logger.info('secret version stored', { name, version: added.version });
      return { result: publicVersion(added), changed: true };
    });
  }

  /** With `requestToken`, a retry answers the pending version the first call made, its value generated once. */
  createPendingVersion(name: string, value: SecretPayload | undefined, requestToken?: string): Promise<SecretVersion> {
    const payload = value ?? randomBytes(this.#config.generatedValueBytes).toString('base64url');
    checkSecretPayload(payload, this.#config, name);
    return this.#mutate(async (body, key) => {
      const secret = this.#secret(body, name);
      const request = requestToken === undefined ? undefined : await writeRequest(key, name, 'pending', requestToken, value);
      const replay = request === undefined ? undefined : replayedVersion(secret, name, request);
      if (replay !== undefined) return { result: publicVersion(replay), changed: false };
      // A pending version nobody promoted is abandoned: it was never released, so it is revoked, not kept readable.
      for (const old of secret.versions) {
        if (old.status === 'pending') this.#revoke(old);
      }
      const added = await this.#addVersion(secret, key, name, payload, 'pending');
      added.stages = ['pending'];
      if (request !== undefined) added.request = request;
      this.#prune(secret);
      this.#logger.info('pending secret version created', { name, version: added.version });
      return { result: publicVersion(added), changed: true };
    });
  }

  async testVersion(name: string, version: string): Promise<{ ok: boolean; reason?: string }> {
    const { body, key } = await this.#readVerified();
    const v = this.#version(body, name, version);
    if (v.status === 'revoked' || v.sealed === undefined) return { ok: false, reason: `version ${v.version} is revoked` };
    const value = await this.#decrypt(key as Buffer, name, v);
    try {
      checkSecretPayload(value, this.#config, name);
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
    return { ok: true };
  }

  promoteVersion(name: string, version: string): Promise<SecretVersion> {
    return this.#mutate(async (body) => {
      const secret = this.#secret(body, name);
      const target = this.#versionOf(secret, name, version);
      if (target.status === 'revoked') {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${target.version} is revoked and cannot be promoted`, {
          details: { name, version: target.version, status: target.status, reason: 'revoked' },
        });
      }
      if (target.stages.includes('current')) return { result: publicVersion(target), changed: false };
      this.#makeCurrent(secret, target);
      this.#logger.info('secret version promoted', { name, version: target.version });
      return { result: publicVersion(target), changed: true };
    });
  }

  revokeVersion(name: string, version: string): Promise<SecretVersion> {
    return this.#mutate(async (body) => {
      const secret = this.#secret(body, name);
      const target = this.#versionOf(secret, name, version);
      if (target.status === 'revoked') return { result: publicVersion(target), changed: false };
      if (target.stages.includes('current')) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${target.version} is current: promote another version before revoking it`, {
          details: { name, version: target.version, status: target.status, reason: 'current' },
        });
      }
      this.#revoke(target);
      this.#logger.info('secret version revoked', { name, version: target.version });
      return { result: publicVersion(target), changed: true };
    });
  }

  /** Revoked values are erased from the file, not only flagged. */
  #revoke(v: StoredVersion): void {
    v.status = 'revoked';
    v.stages = [];
    v.updatedAt = now();
    delete v.sealed;
  }

  /** `target` becomes active and current; the old current becomes deprecated and previous (readable during grace). */
  #makeCurrent(secret: StoredSecret, target: StoredVersion): void {
    const at = now();
    const old = secret.versions.find((v) => v !== target && v.stages.includes('current'));
    for (const v of secret.versions) {
      if (v !== target && v.stages.includes('previous')) {
        v.stages = v.stages.filter((s) => s !== 'previous');
        v.updatedAt = at;
      }
    }
    if (old !== undefined) {
      old.status = 'deprecated';
      old.stages = ['previous'];
      old.updatedAt = at;
    }
    target.status = 'active';
    target.stages = ['current'];
    target.updatedAt = at;
  }

  async #addVersion(secret: StoredSecret, key: Buffer, name: string, value: SecretPayload, status: 'active' | 'pending'): Promise<StoredVersion> {
    const version = String(secret.nextVersion);
    secret.nextVersion += 1;
    const at = now();
    const v: StoredVersion = { version, status, stages: [], createdAt: at, updatedAt: at, sealed: await sealValue(key, name, version, Buffer.from(JSON.stringify(value), 'utf8')) };
    secret.versions.push(v);
    return v;
  }

  /** Drops the oldest versions that no stage points at, revoked ones first, beyond `maxVersions`. */
  #prune(secret: StoredSecret): void {
    for (const status of ['revoked', 'deprecated'] as const) {
      while (secret.versions.length > this.#config.maxVersions) {
        const i = secret.versions.findIndex((v) => v.status === status && v.stages.length === 0);
        if (i < 0) break;
        secret.versions.splice(i, 1);
      }
    }
  }

  /** The secret `name`, or undefined; never an inherited property of the map. */
  #own(body: StoreBody, name: string): StoredSecret | undefined {
    return Object.hasOwn(body.secrets, name) ? body.secrets[name] : undefined;
  }

  #secret(body: StoreBody | undefined, name: string): StoredSecret {
    const secret = body?.secrets[name];
    if (secret === undefined || !Object.hasOwn(body?.secrets ?? {}, name)) {
      throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret named '${name}'`, { details: { name } });
    }
    return secret;
  }

  #versionOf(secret: StoredSecret, name: string, version: string): StoredVersion {
    const found = STAGES.has(version) ? secret.versions.find((v) => v.stages.includes(version)) : secret.versions.find((v) => v.version === version);
    if (found === undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' has no ${STAGES.has(version) ? 'version staged' : 'version'} '${version}'`, {
        details: { name, version },
      });
    }
    return found;
  }

  #version(body: StoreBody | undefined, name: string, version: string): StoredVersion {
    return this.#versionOf(this.#secret(body, name), name, version);
  }

  async #decrypt(key: Buffer, name: string, v: StoredVersion): Promise<SecretPayload> {
    const plain = v.sealed === undefined ? undefined : await openValue(key, name, v.version, v.sealed);
    if (plain === undefined) {
      // The key check passed, so the key is right: this value's bytes were altered.
      throw storeError('corrupt-store', `secret '${name}' version ${v.version} does not authenticate: the store was altered`, { name, version: v.version, file: this.#file });
    }
    try {
      return JSON.parse(plain.toString('utf8')) as SecretPayload;
    } catch {
      throw storeError('corrupt-store', `secret '${name}' version ${v.version} does not decode`, { name, version: v.version, file: this.#file });
    }
  }

  #read(): Promise<StoreBody | undefined> {
    return readStore(this.#file);
  }

  /** Every operation checks the key, even those that show only metadata: a wrong key is reported at once. */
  async #readVerified(): Promise<{ body: StoreBody | undefined; key: Buffer | undefined }> {
    const body = await this.#read();
    return { body, key: body === undefined ? undefined : await this.#verifiedKey(body) };
  }

  #storeKey(kdf: ScryptParams): Promise<Buffer> {
    const id = `${kdf.salt}/${kdf.cost}/${kdf.blockSize}/${kdf.parallelization}`;
    let key = this.#keys.get(id);
    if (key === undefined) {
      key = deriveStoreKey(this.#material, kdf).catch((cause: unknown) => {
        this.#keys.delete(id);
        throw storeError('corrupt-store', `the key derivation parameters in ${this.#file} are unusable`, { file: this.#file }, cause);
      });
      this.#keys.set(id, key);
    }
    return key;
  }

  async #verifiedKey(body: StoreBody): Promise<Buffer> {
    const key = await this.#storeKey(body.kdf);
    if (!(await verifyKeyCheck(key, body.keyCheck))) {
      throw storeError('wrong-key', `the key does not open credential store ${this.#file} (wrong key); the store was left untouched`, {
        file: this.#file,
        ...(this.#config.keyEnv === undefined ? { keyFile: this.#config.keyFile } : { keyEnv: this.#config.keyEnv }),
      });
    }
    return key;
  }

  /**
   * Read-modify-write under the in-thread queue (so one thread's calls do not compete for the lock file) and the
   * store lock. `changed: false` marks an idempotent no-op that needs no write.
   */
  #mutate<T>(fn: (body: StoreBody, key: Buffer) => Promise<{ result: T; changed: boolean }>): Promise<T> {
    const run = async (): Promise<T> =>
      withFileLock(this.#lockFile, { timeoutMs: this.#config.lockTimeoutMs, staleMs: this.#config.lockStaleMs }, async () => {
        let body = await this.#read();
        let key: Buffer;
        if (body === undefined) {
          const kdf = newScryptParams(this.#config.scrypt);
          key = await this.#storeKey(kdf);
          body = { kdf, keyCheck: await sealKeyCheck(key), secrets: {} };
        } else {
          key = await this.#verifiedKey(body);
        }
        const { result, changed } = await fn(body, key);
        if (changed) await writeStore(this.#file, body);
        return result;
      });
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }
}
