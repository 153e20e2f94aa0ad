import { randomBytes } from 'node:crypto';
import { WorkerManagerError, type CredentialHandlers, type PluginLogger, type SecretPayload, type SecretValue, type SecretVersion, checkSecretPayload } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import { CasMismatch, type KvClient, type KvMetadata } from './KvClient.ts';
import { STAGE_KEY, STAGES, stagesOf, versionView, withStages, type Stage, type StageMap } from './stages.ts';
import { decodeValue, encodeValue, sameValue } from './valueCodec.ts';

/** Attempts of a write that keeps losing the check-and-set race to other writers. */
const CAS_ATTEMPTS = 5;

function notFound(name: string): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret named '${name}'`, { details: { name } });
}

/**
 * The contract over KV version 2. Versions are KV versions; stages live in the key's custom metadata (`wm-current`,
 * `wm-pending`, `wm-previous`); revoking destroys a version. Writes go through check-and-set, and the writes of one
 * key are serialised in this thread, because Vault's metadata endpoint has no check-and-set of its own.
 */
export class VaultCredentials {
  readonly #config: ResolvedConfig;
  readonly #kv: KvClient;
  readonly #logger: PluginLogger;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(config: ResolvedConfig, kv: KvClient, logger: PluginLogger) {
    this.#config = config;
    this.#kv = kv;
    this.#logger = logger;
  }

  handlers(): Omit<CredentialHandlers, 'close'> {
    return {
      getSecret: ({ name, version }) => this.getSecret(name, version ?? 'current'),
      listVersions: async ({ name }) => {
        const meta = await this.#meta(name);
        const stages = stagesOf(meta);
        return Object.keys(meta.versions)
          .map(Number)
          .sort((a, b) => a - b)
          .map((v) => versionView(meta, stages, v));
      },
      describe: async ({ name }) => {
        const meta = await this.#meta(name);
        const current = stagesOf(meta).current;
        return { name, ...(current === undefined ? {} : { currentVersion: String(current) }), versions: Object.keys(meta.versions).length };
      },
      putSecret: ({ name, value, requestToken }) => this.putSecret(name, value, requestToken),
      createPendingVersion: ({ name, value, requestToken }) => this.createPendingVersion(name, value, requestToken),
      testVersion: ({ name, version }) => this.testVersion(name, version),
      promoteVersion: ({ name, version }) => this.#locked(name, () => this.promoteVersion(name, version)),
      revokeVersion: ({ name, version }) => this.#locked(name, () => this.revokeVersion(name, version)),
    };
  }

  async getSecret(name: string, ref: string): Promise<SecretValue> {
    if (ref === 'current') {
      // One round trip instead of two in the steady state (what every worker create without a cached value waits
      // for): a read of the latest version carries the key's custom metadata in the same answer, so when `wm-current`
      // is absent or names that version, it is the current one, exactly as stagesOf would find it. Anything else (a
      // rotation between create and promote, a deleted or destroyed latest version, no key, a server that does not
      // send custom_metadata) takes the full path below, with its errors unchanged.
      const latest = await this.#kv.read(name);
      if (latest.kind === 'data' && latest.customMetadata !== undefined) {
        const pinned = latest.customMetadata?.[STAGE_KEY.current];
        if (pinned === undefined || pinned === String(latest.version)) return { name, version: String(latest.version), value: decodeValue(latest.data, name, latest.version).value };
      }
    }
    const meta = await this.#meta(name);
    const version = this.#resolve(name, meta, ref);
    const read = await this.#kv.read(name, version);
    if (read.kind === 'data') return { name, version: String(version), value: decodeValue(read.data, name, version).value };
    throw this.#unreadable(name, version, read.kind === 'deleted' ? { status: 'deleted', deletionTime: read.deletionTime } : { status: read.kind === 'destroyed' ? 'revoked' : 'missing' });
  }

  putSecret(name: string, value: SecretPayload, requestToken: string | undefined): Promise<SecretVersion> {
    checkSecretPayload(value, this.#config, name);
    return this.#locked(name, async () => {
      for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt += 1) {
        const meta = await this.#kv.metadata(name);
        if (requestToken !== undefined && meta !== undefined) {
          const done = await this.#retried(name, meta, requestToken, value, 'current');
          if (done !== undefined) return done;
        }
        const written = await this.#kv.write(name, encodeValue(value, requestToken), meta?.current_version ?? 0);
        if (written instanceof CasMismatch) continue;
        const before = meta === undefined ? {} : stagesOf(meta);
        const stages: StageMap = { ...before, current: written.version, previous: before.current };
        const after = await this.#saveStages(name, meta, stages, written.version, written.created_time);
        this.#logger.info('secret version stored', { name, version: String(written.version) });
        return versionView(after, stagesOf(after), written.version);
      }
      throw this.#casExhausted(name);
    });
  }

  createPendingVersion(name: string, value: SecretPayload | undefined, requestToken: string | undefined): Promise<SecretVersion> {
    const payload = value ?? randomBytes(this.#config.generatedValueBytes).toString('base64url');
    checkSecretPayload(payload, this.#config, name);
    return this.#locked(name, async () => {
      for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt += 1) {
        let meta = await this.#meta(name);
        if (requestToken !== undefined) {
          const done = await this.#retried(name, meta, requestToken, value, 'pending');
          if (done !== undefined) return done;
        }
        const before = stagesOf(meta);
        // Pin the current version first: without `wm-current`, the new (latest) version would read as current.
        if (meta.custom_metadata?.[STAGE_KEY.current] === undefined && before.current !== undefined) {
          await this.#kv.writeCustomMetadata(name, withStages(meta, before));
          meta = { ...meta, custom_metadata: withStages(meta, before) };
        }
        const written = await this.#kv.write(name, encodeValue(payload, requestToken), meta.current_version);
        if (written instanceof CasMismatch) continue;
        const after = await this.#saveStages(name, meta, { ...before, pending: written.version }, written.version, written.created_time);
        await this.#abandon(name, before.pending);
        this.#logger.info('pending secret version created', { name, version: String(written.version) });
        return versionView(after, stagesOf(after), written.version);
      }
      throw this.#casExhausted(name);
    });
  }

  async testVersion(name: string, ref: string): Promise<{ ok: boolean; reason?: string }> {
    const meta = await this.#meta(name);
    const version = this.#resolve(name, meta, ref);
    const read = await this.#kv.read(name, version);
    if (read.kind === 'destroyed') return { ok: false, reason: `version ${version} is revoked` };
    if (read.kind === 'deleted') return { ok: false, reason: `version ${version} is soft-deleted in Vault` };
    if (read.kind === 'missing') return { ok: false, reason: `version ${version} cannot be read` };
    try {
      const { value } = decodeValue(read.data, name, version);
      checkSecretPayload(value, this.#config, name);
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
    return { ok: true };
  }

  async promoteVersion(name: string, ref: string): Promise<SecretVersion> {
    const meta = await this.#meta(name);
    const version = this.#resolve(name, meta, ref);
    const v = meta.versions[String(version)];
    if (v === undefined || v.destroyed) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${version} is revoked and cannot be promoted`, {
        details: { name, version: String(version), status: 'revoked', reason: 'revoked' },
      });
    }
    const before = stagesOf(meta);
    if (before.current === version) return versionView(meta, before, version);
    // A version an operator soft-deleted comes back before it is released.
    if (v.deletion_time !== '' && Date.parse(v.deletion_time) <= Date.now()) await this.#kv.undelete(name, [version]);
    const stages: StageMap = { ...before, current: version };
    if (before.current !== undefined && before.current !== version) stages.previous = before.current;
    if (before.pending === version) delete stages.pending;
    if (stages.previous === version) delete stages.previous;
    const after = await this.#saveStages(name, meta, stages);
    this.#logger.info('secret version promoted', { name, version: String(version) });
    return versionView(after, stagesOf(after), version);
  }

  async revokeVersion(name: string, ref: string): Promise<SecretVersion> {
    const meta = await this.#meta(name);
    const version = this.#resolve(name, meta, ref);
    const before = stagesOf(meta);
    const v = meta.versions[String(version)];
    if (v === undefined || v.destroyed) return versionView(meta, before, version);
    if (before.current === version) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${version} is current: promote another version before revoking it`, {
        details: { name, version: String(version), status: 'active', reason: 'current' },
      });
    }
    await this.#kv.destroy(name, [version]);
    const stages: StageMap = { ...before };
    for (const s of STAGES) if (stages[s] === version) delete stages[s];
    const destroyed: KvMetadata = { ...meta, versions: { ...meta.versions, [String(version)]: { ...v, destroyed: true } } };
    const after = await this.#saveStages(name, destroyed, stages);
    this.#logger.info('secret version revoked', { name, version: String(version) });
    return versionView(after, stagesOf(after), version);
  }

  /**
   * A retried write: the version that carries `requestToken` among the newest ones. Same value (or no value given):
   * that version, with the stage the first call meant to give it if it lost it to a crash between the two writes
   * and nothing newer came since. Another value: a conflict.
   */
  async #retried(name: string, meta: KvMetadata, requestToken: string, value: SecretPayload | undefined, stage: Stage): Promise<SecretVersion | undefined> {
    const newest = meta.current_version;
    const oldest = Math.max(1, newest - this.#config.requestTokenLookback + 1);
    for (let version = newest; version >= oldest; version -= 1) {
      const v = meta.versions[String(version)];
      if (v === undefined || v.destroyed) continue;
      const read = await this.#kv.read(name, version);
      if (read.kind !== 'data') continue;
      const found = decodeValue(read.data, name, version);
      if (found.requestToken !== requestToken) continue;
      if (value !== undefined && !sameValue(found.value, value)) {
        throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}': requestToken was already used for version ${version} with another value`, {
          details: { name, version: String(version), reason: 'request-token-reused' },
        });
      }
      const stages = stagesOf(meta);
      if (version === newest && !Object.values(stages).includes(version)) {
        const completed: StageMap = stage === 'current' ? { ...stages, current: version, previous: stages.current } : { ...stages, pending: version };
        const after = await this.#saveStages(name, meta, completed);
        if (stage === 'pending') await this.#abandon(name, stages.pending);
        return versionView(after, stagesOf(after), version);
      }
      return versionView(meta, stages, version);
    }
    return undefined;
  }

  /** An earlier pending version nobody promoted was never released: it is destroyed, not kept readable. */
  async #abandon(name: string, version: number | undefined): Promise<void> {
    if (version === undefined) return;
    await this.#kv.destroy(name, [version]);
    this.#logger.info('abandoned pending secret version revoked', { name, version: String(version) });
  }

  /** Writes the stages and returns the metadata as it now is (a written version added when given). */
  async #saveStages(name: string, meta: KvMetadata | undefined, stages: StageMap, added?: number, createdTime?: string): Promise<KvMetadata> {
    const custom = withStages(meta, stages);
    await this.#kv.writeCustomMetadata(name, custom);
    const versions = { ...(meta?.versions ?? {}) };
    if (added !== undefined) versions[String(added)] = { created_time: createdTime ?? new Date().toISOString(), deletion_time: '', destroyed: false };
    return { current_version: Math.max(meta?.current_version ?? 0, added ?? 0), custom_metadata: custom, versions };
  }

  async #meta(name: string): Promise<KvMetadata> {
    const meta = await this.#kv.metadata(name);
    if (meta === undefined || Object.keys(meta.versions).length === 0) throw notFound(name);
    return meta;
  }

  #resolve(name: string, meta: KvMetadata, ref: string): number {
    if ((STAGES as readonly string[]).includes(ref)) {
      const v = stagesOf(meta)[ref as Stage];
      if (v === undefined) {
        throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' has no version staged '${ref}'`, { details: { name, version: ref } });
      }
      return v;
    }
    if (!/^[1-9][0-9]{0,15}$/.test(ref) || meta.versions[ref] === undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' has no version '${ref}'`, { details: { name, version: ref } });
    }
    return Number(ref);
  }

  #unreadable(name: string, version: number, why: { status: string; deletionTime?: string }): WorkerManagerError {
    const text = why.status === 'revoked' ? 'is revoked (destroyed in Vault)' : why.status === 'deleted' ? 'is soft-deleted in Vault (undelete it to read it)' : 'cannot be read';
    return new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' version ${version} ${text}`, {
      details: { name, version: String(version), ...why },
    });
  }

  #casExhausted(name: string): WorkerManagerError {
    return new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}': other writers kept making versions first (${CAS_ATTEMPTS} check-and-set attempts); retry`, {
      details: { name, reason: 'cas', attempts: CAS_ATTEMPTS },
    });
  }

  /** One write at a time per secret name in this thread. */
  #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prior = this.#locks.get(name) ?? Promise.resolve();
    const next = prior.then(fn, fn);
    const settled = next.catch(() => {});
    this.#locks.set(name, settled);
    void settled.then(() => {
      if (this.#locks.get(name) === settled) this.#locks.delete(name);
    });
    return next;
  }
}
