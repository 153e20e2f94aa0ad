import { createHash, randomBytes } from 'node:crypto';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateSecretVersionStageCommand,
  type DescribeSecretCommandOutput,
  type GetSecretValueCommandOutput,
  type ListSecretVersionIdsCommandOutput,
  type PutSecretValueCommandOutput,
} from '@aws-sdk/client-secrets-manager';
import { WorkerManagerError, type CredentialHandlers, type OwnerLabels, type PluginLogger, type SecretPayload, type SecretValue, type SecretVersion } from '@worker-manager/plugin-sdk';
import type { AwsCaller } from './AwsCaller.ts';
import { fromStored, toSecretString } from './checkValue.ts';
import type { ResolvedConfig } from './config.ts';
import { clientRequestToken } from './requestToken.ts';
import { AWS_LABEL, isStage, MAX_TAG_VALUE_LENGTH, REVOKED_SET_TAG_PREFIX, REVOKED_TAG_PREFIX, revokedByTag, toSecretVersion, type AwsVersionEntry } from './stages.ts';

const AWS_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
/** Single revocation tags are folded into packs once there are this many (a pack holds six UUIDs). */
const PACK_AT = 6;

/** What DescribeSecret tells about a secret, in the plugin's terms. */
interface SecretState {
  /** VersionId to its labels, for labelled versions (AWS omits the others). */
  labels: Map<string, string[]>;
  revoked: Set<string>;
  tagKeys: string[];
  /** Tag key to value. */
  tagValues: Map<string, string>;
}

/**
 * The plugin's handlers over AWS Secrets Manager. Each contract operation is one of the four steps of an AWS rotation
 * Lambda or a plain read/write; see README.md for the mapping. Reads check the revocation tags on every call (no
 * cache): a revoked version must stop being served by every thread at once.
 */
export class SecretsManagerStore {
  readonly #aws: AwsCaller;
  readonly #config: ResolvedConfig;
  readonly #logger: PluginLogger;
  readonly #owner: OwnerLabels;

  constructor(aws: AwsCaller, config: ResolvedConfig, logger: PluginLogger, owner: OwnerLabels) {
    this.#aws = aws;
    this.#config = config;
    this.#logger = logger;
    this.#owner = owner;
  }

  /** The contract handlers. */
  handlers(): CredentialHandlers {
    return {
      getSecret: ({ name, version }, call) => this.getSecret(name, version ?? 'current', call.signal),
      listVersions: ({ name }, call) => this.listVersions(name, call.signal),
      describe: ({ name }, call) => this.describe(name, call.signal),
      putSecret: ({ name, value, requestToken }, call) => this.putSecret(name, value, requestToken, call.signal),
      createPendingVersion: ({ name, value, requestToken }, call) => this.createPendingVersion(name, value, requestToken, call.signal),
      testVersion: ({ name, version }, call) => this.testVersion(name, version, call.signal),
      promoteVersion: ({ name, version }, call) => this.promoteVersion(name, version, call.signal),
      revokeVersion: ({ name, version }, call) => this.revokeVersion(name, version, call.signal),
    };
  }

  async getSecret(name: string, version: string, signal?: AbortSignal): Promise<SecretValue> {
    const id = this.#secretId(name);
    // Both at once: the value, and the tags that say whether its version is revoked (and whose tenant it is).
    const [state, got] = await Promise.allSettled([this.#state(name, signal), this.#getValue(name, id, version, signal)]);
    if (state.status === 'rejected') throw state.reason;
    if (got.status === 'rejected') throw got.reason;
    const v = got.value;
    const versionId = v.VersionId ?? '';
    if (state.value.revoked.has(versionId)) throw versionNotFound(name, version, `version ${versionId} is revoked`);
    const value = fromStored(v.SecretString, v.SecretBinary);
    if (value === undefined) throw versionNotFound(name, version, `version ${versionId} has no value`);
    return { name, version: versionId, value };
  }

  async listVersions(name: string, signal?: AbortSignal): Promise<SecretVersion[]> {
    const state = await this.#state(name, signal);
    const entries = await this.#versions(name, signal);
    return entries.map((e) => toSecretVersion(e, state.revoked));
  }

  async describe(name: string, signal?: AbortSignal): Promise<{ name: string; currentVersion?: string; versions: number }> {
    const state = await this.#state(name, signal);
    const entries = await this.#versions(name, signal);
    const current = holder(state, AWS_LABEL.current);
    return { name, ...(current === undefined ? {} : { currentVersion: current }), versions: entries.length };
  }

  /** A plain write: CreateSecret for a new name, else PutSecretValue, which moves AWSCURRENT (AWSPREVIOUS follows). */
  async putSecret(name: string, value: SecretPayload, requestToken: string | undefined, signal?: AbortSignal): Promise<SecretVersion> {
    const secretString = toSecretString(value, this.#config, name);
    const id = this.#secretId(name);
    const token = clientRequestToken(requestToken);
    const redact = redactions(secretString, value);
    let exists = true;
    try {
      await this.#state(name, signal);
    } catch (error) {
      if ((error as WorkerManagerError).code !== 'WM_ERR_SECRET_NOT_FOUND') throw error;
      exists = false;
    }
    if (!exists) {
      try {
        await this.#aws.send((c, abortSignal) => c.send(new CreateSecretCommand({ Name: id, SecretString: secretString, ClientRequestToken: token, Tags: this.#creationTags(), ...(this.#config.kmsKeyId === undefined ? {} : { KmsKeyId: this.#config.kmsKeyId }) }), { abortSignal }), {
          operation: 'CreateSecret',
          name,
          redact,
        }, signal);
        this.#logger.info('secret created', { name, version: token });
        return await this.#versionMeta(name, token, new Set(), signal);
      } catch (error) {
        // Another writer created it first: fall through to PutSecretValue, which AWS makes idempotent on the token.
        if ((error as WorkerManagerError).details?.['awsError'] !== 'ResourceExistsException') throw error;
      }
    }
    await this.#aws.send<PutSecretValueCommandOutput>((c, abortSignal) => c.send(new PutSecretValueCommand({ SecretId: id, SecretString: secretString, ClientRequestToken: token }), { abortSignal }), { operation: 'PutSecretValue', name, redact }, signal);
    this.#logger.info('secret version stored', { name, version: token });
    return this.#versionMeta(name, token, (await this.#state(name, signal)).revoked, signal);
  }

  /**
   * createSecret of a rotation: PutSecretValue with VersionStages [AWSPENDING] (only that label moves). The version
   * that held AWSPENDING without being promoted is abandoned and revoked first. Without a value and with a used token,
   * the version that token made is returned as it is (its value was generated once).
   */
  async createPendingVersion(name: string, value: SecretPayload | undefined, requestToken: string | undefined, signal?: AbortSignal): Promise<SecretVersion> {
    const id = this.#secretId(name);
    const token = clientRequestToken(requestToken);
    const state = await this.#state(name, signal);
    if (value === undefined && requestToken !== undefined) {
      const made = (await this.#versions(name, signal)).find((e) => e.versionId === token);
      if (made !== undefined) return toSecretVersion(made, state.revoked);
    }
    const payload = value ?? randomBytes(this.#config.generatedValueBytes).toString('base64url');
    const secretString = toSecretString(payload, this.#config, name);
    const abandoned = holder(state, AWS_LABEL.pending);
    if (abandoned !== undefined && abandoned !== token && !(state.labels.get(abandoned) ?? []).includes(AWS_LABEL.current) && !state.revoked.has(abandoned)) {
      await this.#markRevoked(name, id, abandoned, state, signal);
      this.#logger.info('abandoned pending secret version revoked', { name, version: abandoned });
    }
    try {
      await this.#aws.send((c, abortSignal) => c.send(new PutSecretValueCommand({ SecretId: id, SecretString: secretString, ClientRequestToken: token, VersionStages: [AWS_LABEL.pending] }), { abortSignal }),
        { operation: 'PutSecretValue', name, redact: redactions(secretString, payload) },
        signal,
      );
    } catch (error) {
      // A concurrent call with the same token and no value generated another value first: its version is the answer.
      if (value !== undefined || (error as WorkerManagerError).details?.['awsError'] !== 'ResourceExistsException') throw error;
    }
    this.#logger.info('pending secret version created', { name, version: token });
    return this.#versionMeta(name, token, (await this.#state(name, signal)).revoked, signal);
  }

  /** testSecret of a rotation: the version must be readable, not revoked, and hold a well-formed value. */
  async testVersion(name: string, version: string, signal?: AbortSignal): Promise<{ ok: boolean; reason?: string }> {
    const state = await this.#state(name, signal);
    const entry = await this.#resolve(name, version, state, signal);
    if (state.revoked.has(entry.versionId)) return { ok: false, reason: `version ${entry.versionId} is revoked` };
    const got = await this.#getValue(name, this.#secretId(name), entry.versionId, signal);
    const value = fromStored(got.SecretString, got.SecretBinary);
    if (value === undefined) return { ok: false, reason: `version ${entry.versionId} has no value` };
    try {
      toSecretString(value, this.#config, name);
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
    return { ok: true };
  }

  /**
   * finishSecret of a rotation: UpdateSecretVersionStage moves AWSCURRENT to the version (RemoveFromVersionId = the
   * old current; AWS moves AWSPREVIOUS to it), then AWSPENDING is taken off the promoted version, so that the next
   * rotation does not look unfinished. Repeating it finishes a promotion that stopped between the two calls.
   */
  async promoteVersion(name: string, version: string, signal?: AbortSignal): Promise<SecretVersion> {
    const id = this.#secretId(name);
    const state = await this.#state(name, signal);
    const entry = await this.#resolve(name, version, state, signal);
    const target = entry.versionId;
    if (state.revoked.has(target)) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${target} is revoked and cannot be promoted`, { details: { name, version: target, status: 'revoked', reason: 'revoked' } });
    }
    const current = holder(state, AWS_LABEL.current);
    if (current !== target) {
      await this.#aws.send((c, abortSignal) => c.send(new UpdateSecretVersionStageCommand({ SecretId: id, VersionStage: AWS_LABEL.current, MoveToVersionId: target, ...(current === undefined ? {} : { RemoveFromVersionId: current }) }), { abortSignal }),
        { operation: 'UpdateSecretVersionStage', name, version: target },
        signal,
      );
      this.#logger.info('secret version promoted', { name, version: target, ...(current === undefined ? {} : { previous: current }) });
    }
    if ((state.labels.get(target) ?? []).includes(AWS_LABEL.pending)) {
      await this.#aws.send((c, abortSignal) => c.send(new UpdateSecretVersionStageCommand({ SecretId: id, VersionStage: AWS_LABEL.pending, RemoveFromVersionId: target }), { abortSignal }), { operation: 'UpdateSecretVersionStage', name, version: target }, signal);
    }
    return this.#versionMeta(name, target, state.revoked, signal);
  }

  /**
   * Revocation: the revoked tag first (from then on no thread serves the version), then its AWSPREVIOUS / AWSPENDING
   * labels are removed, which leaves it deprecated for AWS to expire. The value itself stays in AWS until then.
   */
  async revokeVersion(name: string, version: string, signal?: AbortSignal): Promise<SecretVersion> {
    const id = this.#secretId(name);
    const state = await this.#state(name, signal);
    const entry = await this.#resolve(name, version, state, signal);
    const target = entry.versionId;
    const labels = state.labels.get(target) ?? [];
    if (labels.includes(AWS_LABEL.current)) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `secret '${name}' version ${target} is current: promote another version before revoking it`, {
        details: { name, version: target, status: 'active', reason: 'current' },
      });
    }
    const already = state.revoked.has(target);
    if (!already) await this.#markRevoked(name, id, target, state, signal);
    for (const label of [AWS_LABEL.previous, AWS_LABEL.pending]) {
      if (labels.includes(label)) {
        await this.#aws.send((c, abortSignal) => c.send(new UpdateSecretVersionStageCommand({ SecretId: id, VersionStage: label, RemoveFromVersionId: target }), { abortSignal }), { operation: 'UpdateSecretVersionStage', name, version: target }, signal);
      }
    }
    if (!already) this.#logger.info('secret version revoked', { name, version: target });
    return toSecretVersion({ ...entry, labels: [] }, new Set([target]));
  }

  /**
   * Tags the version revoked, after dropping revocation tags whose versions AWS no longer keeps (50 tags per secret),
   * then folds the single tags into a pack once there are {@link PACK_AT} of them (see REVOKED_SET_TAG_PREFIX).
   */
  async #markRevoked(name: string, id: string, versionId: string, state: SecretState, signal: AbortSignal | undefined): Promise<void> {
    const stale = state.tagKeys.filter((k) => k.startsWith(REVOKED_TAG_PREFIX) || k.startsWith(REVOKED_SET_TAG_PREFIX));
    if (stale.length > 0) {
      const kept = new Set((await this.#versions(name, signal)).map((e) => e.versionId));
      const gone = stale.filter((k) => revokedByTag(k, state.tagValues.get(k)).every((v) => !kept.has(v)));
      if (gone.length > 0) await this.#aws.send((c, abortSignal) => c.send(new UntagResourceCommand({ SecretId: id, TagKeys: gone }), { abortSignal }), { operation: 'UntagResource', name }, signal);
      state.tagKeys = state.tagKeys.filter((k) => !gone.includes(k));
    }
    const key = `${REVOKED_TAG_PREFIX}${versionId}`;
    await this.#aws.send((c, abortSignal) => c.send(new TagResourceCommand({ SecretId: id, Tags: [{ Key: key, Value: new Date().toISOString() }] }), { abortSignal }), { operation: 'TagResource', name, version: versionId }, signal);
    state.revoked.add(versionId);
    if (!state.tagKeys.includes(key)) state.tagKeys.push(key);
    const singles = state.tagKeys.filter((k) => k.startsWith(REVOKED_TAG_PREFIX));
    if (singles.length < PACK_AT) return;
    // The packs are on the secret before the single tags go: no moment where a revoked version reads as live.
    const packs = packIds(singles.map((k) => k.slice(REVOKED_TAG_PREFIX.length)));
    await this.#aws.send((c, abortSignal) => c.send(new TagResourceCommand({ SecretId: id, Tags: packs }), { abortSignal }), { operation: 'TagResource', name }, signal);
    await this.#aws.send((c, abortSignal) => c.send(new UntagResourceCommand({ SecretId: id, TagKeys: singles }), { abortSignal }), { operation: 'UntagResource', name }, signal);
    state.tagKeys = [...state.tagKeys.filter((k) => !singles.includes(k)), ...packs.map((p) => p.Key)];
    for (const p of packs) state.tagValues.set(p.Key, p.Value);
  }

  /** DescribeSecret, in the plugin's terms; refuses a secret of another tenant when the instance has one. */
  async #state(name: string, signal: AbortSignal | undefined): Promise<SecretState> {
    const d = await this.#aws.send<DescribeSecretCommandOutput>((c, abortSignal) => c.send(new DescribeSecretCommand({ SecretId: this.#secretId(name) }), { abortSignal }), { operation: 'DescribeSecret', name }, signal);
    const tags = d.Tags ?? [];
    if (this.#config.tenant !== undefined) {
      const owner = tags.find((t) => t.Key === this.#config.tenantTagKey)?.Value;
      if (owner !== this.#config.tenant) {
        throw new WorkerManagerError('WM_ERR_PERMISSION_DENIED', `secret '${name}' does not carry tag ${this.#config.tenantTagKey}=${this.#config.tenant} of this instance's tenant`, {
          details: { name, reason: 'tenant', tenantTagKey: this.#config.tenantTagKey },
        });
      }
    }
    const revoked = new Set<string>();
    const tagValues = new Map<string, string>();
    for (const t of tags) {
      if (t.Key === undefined) continue;
      tagValues.set(t.Key, t.Value ?? '');
      for (const v of revokedByTag(t.Key, t.Value)) revoked.add(v);
    }
    return { labels: new Map(Object.entries(d.VersionIdsToStages ?? {})), revoked, tagKeys: [...tagValues.keys()], tagValues };
  }

  /** Every version AWS keeps, deprecated ones included, oldest first. */
  async #versions(name: string, signal: AbortSignal | undefined): Promise<AwsVersionEntry[]> {
    const out: AwsVersionEntry[] = [];
    let next: string | undefined;
    do {
      const page: ListSecretVersionIdsCommandOutput = await this.#aws.send((c, abortSignal) => c.send(new ListSecretVersionIdsCommand({ SecretId: this.#secretId(name), IncludeDeprecated: true, MaxResults: 100, ...(next === undefined ? {} : { NextToken: next }) }), { abortSignal }),
        { operation: 'ListSecretVersionIds', name },
        signal,
      );
      for (const v of page.Versions ?? []) if (v.VersionId !== undefined) out.push({ versionId: v.VersionId, labels: v.VersionStages ?? [], createdAt: v.CreatedDate });
      next = page.NextToken;
    } while (next !== undefined);
    return out.sort((a, b) => (a.createdAt?.getTime() ?? 0) - (b.createdAt?.getTime() ?? 0));
  }

  async #resolve(name: string, version: string, state: SecretState, signal: AbortSignal | undefined): Promise<AwsVersionEntry> {
    const wanted = isStage(version) ? holder(state, AWS_LABEL[version]) : version;
    const entry = wanted === undefined ? undefined : (await this.#versions(name, signal)).find((e) => e.versionId === wanted);
    if (entry === undefined) throw versionNotFound(name, version, isStage(version) ? `no version is staged '${version}'` : `no version '${version}'`);
    return entry;
  }

  async #versionMeta(name: string, versionId: string, revoked: ReadonlySet<string>, signal: AbortSignal | undefined): Promise<SecretVersion> {
    const entry = (await this.#versions(name, signal)).find((e) => e.versionId === versionId);
    if (entry === undefined) throw versionNotFound(name, versionId, `version ${versionId} is not listed by AWS`);
    return toSecretVersion(entry, revoked);
  }

  async #getValue(name: string, id: string, version: string, signal: AbortSignal | undefined): Promise<GetSecretValueCommandOutput> {
    const select = isStage(version) ? { VersionStage: AWS_LABEL[version] } : { VersionId: version };
    try {
      return await this.#aws.send<GetSecretValueCommandOutput>((c, abortSignal) => c.send(new GetSecretValueCommand({ SecretId: id, ...select }), { abortSignal }), { operation: 'GetSecretValue', name, version }, signal);
    } catch (error) {
      // The secret exists (DescribeSecret says so, in parallel): a missing value is a missing version or stage.
      if ((error as WorkerManagerError).details?.['awsError'] === 'ResourceNotFoundException') throw versionNotFound(name, version, isStage(version) ? `no version is staged '${version}'` : `no version '${version}'`);
      throw error;
    }
  }

  #creationTags(): Array<{ Key: string; Value: string }> {
    const tags = [
      { Key: 'worker-manager/host', Value: this.#owner['worker-manager/host'] },
      { Key: 'worker-manager/instance', Value: this.#owner['worker-manager/instance'] },
    ];
    if (this.#config.tenant !== undefined) tags.push({ Key: this.#config.tenantTagKey, Value: this.#config.tenant });
    return tags;
  }

  #secretId(name: string): string {
    const id = `${this.#config.namePrefix}${name}`;
    if (!AWS_NAME.test(id)) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `secret name '${name}' is not a valid AWS Secrets Manager name (1-512 of A-Z a-z 0-9 / _ + = . @ -, prefix included)`, {
        details: { name, namePrefix: this.#config.namePrefix },
      });
    }
    return id;
  }
}

function holder(state: SecretState, label: string): string | undefined {
  for (const [id, labels] of state.labels) if (labels.includes(label)) return id;
  return undefined;
}

/**
 * Revocation packs holding `ids`: space-separated values of at most 256 characters, each keyed by a digest of its value,
 * so that writing the same pack twice is one tag.
 */
function packIds(ids: readonly string[]): Array<{ Key: string; Value: string }> {
  const values: string[] = [];
  for (const id of ids) {
    const last = values.at(-1);
    if (last !== undefined && last.length + 1 + id.length <= MAX_TAG_VALUE_LENGTH) values[values.length - 1] = `${last} ${id}`;
    else values.push(id);
  }
  return values.map((Value) => ({ Key: `${REVOKED_SET_TAG_PREFIX}${createHash('sha256').update(Value).digest('hex').slice(0, 16)}`, Value }));
}

function versionNotFound(name: string, version: string, why: string): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}': ${why}`, { details: { name, version } });
}

/** Strings an AWS message must never echo: the SecretString sent and every value of a key/value map. */
function redactions(secretString: string, value: SecretPayload): string[] {
  return typeof value === 'string' ? [secretString] : [secretString, ...Object.values(value)];
}
