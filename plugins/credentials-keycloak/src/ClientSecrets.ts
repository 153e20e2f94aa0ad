import { WorkerManagerError, type PluginLogger, type SecretValue, type SecretVersion } from '@worker-manager/plugin-sdk';
import type { AdminApi, ClientInfo } from './AdminApi.ts';
import type { RevokedVersions } from './RevokedVersions.ts';
import { fingerprint, isoFromMs, isoFromSeconds, type SecretName } from './secretNames.ts';
import type { TokenEndpoint } from './TokenEndpoint.ts';

/** What ClientSecrets needs from the rest of the plugin. */
export interface ClientSecretsDeps {
  admin: AdminApi;
  endpoint: TokenEndpoint;
  revoked: RevokedVersions;
  /** Tells the token side that Keycloak now holds a new secret for this client. */
  onRegenerated(clientId: string, secret: string): void;
  logger: PluginLogger;
  signal: AbortSignal;
}

/** One live secret of a client as Keycloak holds it. */
interface Live {
  version: string;
  value: string;
  createdAt: string;
  /** Epoch ms; undefined when the realm sets no expiry. */
  expiresAt: number | undefined;
}

/** The client as Keycloak holds it now: its current secret and, while the rotation executor keeps one, the rotated one. */
interface ClientView {
  client: ClientInfo;
  current: Live;
  rotated: Live | undefined;
}

const EPOCH = new Date(0).toISOString();

/**
 * `client-secret/<clientId>`: a Keycloak client secret, rotated through the admin API. Keycloak holds at most two:
 * the current secret (version `active`, stage `current`) and, under the secret-rotation executor, the rotated one
 * (`deprecated`, `previous`, valid until `client.secret.rotated.expiration.time`). There is never a `pending` version:
 * a regenerated secret is live at once (capability `secret.rotate.immediate`). Version ids are fingerprints
 * (secretNames.ts); revoked ones are remembered in the state directory (RevokedVersions).
 */
export class ClientSecrets {
  readonly #d: ClientSecretsDeps;

  constructor(deps: ClientSecretsDeps) {
    this.#d = deps;
  }

  async getSecret(n: SecretName, version: string | undefined): Promise<SecretValue> {
    const view = await this.#view(n);
    const live = this.#resolve(n, view, version ?? 'current');
    if (live.expiresAt !== undefined && live.expiresAt <= Date.now()) {
      throw new WorkerManagerError('WM_ERR_SECRET_EXPIRED', `version ${live.version} of '${n.name}' expired at ${isoFromMs(live.expiresAt)} (Keycloak no longer accepts it); rotate the client secret`, {
        details: { name: n.name, version: live.version, expiresAt: isoFromMs(live.expiresAt) },
      });
    }
    const value: SecretValue = { name: n.name, version: live.version, value: live.value };
    if (live.expiresAt !== undefined) value.leaseTtlMs = Math.max(0, live.expiresAt - Date.now());
    return value;
  }

  async listVersions(n: SecretName): Promise<SecretVersion[]> {
    return this.#list(n, await this.#view(n));
  }

  async describe(n: SecretName): Promise<{ name: string; currentVersion: string; versions: number }> {
    const view = await this.#view(n);
    return { name: n.name, currentVersion: view.current.version, versions: this.#list(n, view).length };
  }

  /**
   * Regenerates the secret in Keycloak. The new secret is current at once; the secret-rotation executor (if on) keeps
   * the old one valid as the rotated secret for its `rotated-expiration-period`, else the old one dies now.
   */
  async createPendingVersion(n: SecretName, value: unknown): Promise<SecretVersion> {
    // The client is looked up first: an unknown or forbidden client says so whatever the params.
    const client = await this.#client(n);
    if (value !== undefined) {
      throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `Keycloak generates client secrets: createPendingVersion of '${n.name}' takes no value`, {
        details: { name: n.name, reason: 'value-not-supported' },
      });
    }
    const secret = await this.#d.admin.regenerateSecret(client, this.#d.signal);
    this.#d.onRegenerated(n.clientId, secret);
    const version = fingerprint('client-secret', n.clientId, secret);
    this.#d.logger.info('client secret regenerated in Keycloak; it is current now', { name: n.name, version });
    // Read back for Keycloak's own creation and expiry times of the new secret.
    const view = await this.#view(n);
    if (view.current.version !== version) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `the client secret of '${n.clientId}' changed again while it was being regenerated; list its versions`, {
        details: { name: n.name, version, reason: 'concurrent-change' },
      });
    }
    return this.#meta(view.current, 'active', ['current']);
  }

  /** Tries the version at the token endpoint: a client credentials grant with it must succeed. */
  async testVersion(n: SecretName, version: string): Promise<{ ok: boolean; reason?: string }> {
    const revoked = this.#d.revoked.find(n.clientId, version);
    const view = await this.#view(n);
    if (revoked !== undefined) return { ok: false, reason: `version ${version} was revoked at ${revoked.revokedAt}` };
    const live = this.#resolve(n, view, version);
    try {
      await this.#d.endpoint.grant(n.clientId, live.value, { signal: this.#d.signal });
      return { ok: true };
    } catch (error) {
      if (error instanceof WorkerManagerError && (error.code === 'WM_ERR_AUTHENTICATION' || error.code === 'WM_ERR_PERMISSION_DENIED')) {
        const said = (error.details as { oauthError?: unknown } | undefined)?.oauthError;
        return { ok: false, reason: `Keycloak refused a client credentials grant with version ${live.version} (${typeof said === 'string' ? said : error.code})` };
      }
      throw error;
    }
  }

  /**
   * Bookkeeping only: Keycloak made the secret current when it was created. Promoting the current version answers
   * it; the rotated one cannot become current again in Keycloak (rotate forward instead): WM_ERR_COMPATIBILITY.
   */
  async promoteVersion(n: SecretName, version: string): Promise<SecretVersion> {
    if (this.#d.revoked.find(n.clientId, version) !== undefined) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `version ${version} of '${n.name}' is revoked and cannot be promoted`, { details: { name: n.name, version, status: 'revoked' } });
    }
    const view = await this.#view(n);
    const live = this.#resolve(n, view, version);
    if (live.version === view.current.version) return this.#meta(view.current, 'active', ['current']);
    throw new WorkerManagerError(
      'WM_ERR_COMPATIBILITY',
      `Keycloak cannot make the rotated secret of '${n.clientId}' current again (version ${live.version}); create a new version instead. The rotated secret stays valid until ${live.expiresAt === undefined ? 'it is revoked' : isoFromMs(live.expiresAt)}`,
      { details: { name: n.name, version: live.version, reason: 'rollback-not-supported' } },
    );
  }

  /**
   * Revokes the rotated secret (DELETE .../client-secret/rotated). The current secret cannot be revoked
   * (WM_ERR_CONFLICT); a version revoked before answers as revoked again, and the delete is repeated while Keycloak
   * still holds it (a retry after a failed delete).
   */
  async revokeVersion(n: SecretName, version: string): Promise<SecretVersion> {
    const view = await this.#view(n);
    const known = this.#d.revoked.find(n.clientId, version);
    const rotatedHere = view.rotated !== undefined && (version === view.rotated.version || version === 'previous');
    if (rotatedHere && view.rotated !== undefined) {
      const rotated = view.rotated;
      const revokedAt = new Date().toISOString();
      await this.#d.revoked.add(n.clientId, { version: rotated.version, createdAt: rotated.createdAt, revokedAt });
      await this.#d.admin.deleteRotatedSecret(view.client, this.#d.signal);
      this.#d.logger.info('rotated client secret invalidated in Keycloak', { name: n.name, version: rotated.version });
      return { version: rotated.version, status: 'revoked', stages: [], createdAt: rotated.createdAt };
    }
    if (known !== undefined) return { version: known.version, status: 'revoked', stages: [], createdAt: known.createdAt };
    const live = this.#resolve(n, view, version);
    if (live.version === view.current.version) {
      throw new WorkerManagerError('WM_ERR_CONFLICT', `version ${live.version} of '${n.name}' is current and cannot be revoked; create a new version first`, {
        details: { name: n.name, version: live.version, stages: ['current'] },
      });
    }
    throw new WorkerManagerError('WM_ERR_INTERNAL', `version ${live.version} of '${n.name}' is neither current nor rotated`, { details: { name: n.name, version: live.version } });
  }

  async #client(n: SecretName): Promise<ClientInfo> {
    const client = await this.#d.admin.findClient(n.clientId, this.#d.signal);
    if (client === undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${n.name}': realm has no client '${n.clientId}'`, { details: { name: n.name, clientId: n.clientId } });
    }
    return client;
  }

  async #view(n: SecretName): Promise<ClientView> {
    const client = await this.#client(n);
    const secret = await this.#d.admin.clientSecret(client, this.#d.signal);
    const current: Live = {
      version: fingerprint('client-secret', n.clientId, secret),
      value: secret,
      createdAt: client.secretCreatedAt === undefined ? EPOCH : isoFromSeconds(client.secretCreatedAt),
      expiresAt: client.secretExpiresAt === undefined ? undefined : client.secretExpiresAt * 1_000,
    };
    let rotated: Live | undefined;
    if (client.hasRotated) {
      const value = await this.#d.admin.rotatedSecret(client, this.#d.signal);
      if (value !== undefined) {
        rotated = {
          version: fingerprint('client-secret', n.clientId, value),
          value,
          createdAt: client.rotatedCreatedAt === undefined ? EPOCH : isoFromSeconds(client.rotatedCreatedAt),
          expiresAt: client.rotatedExpiresAt === undefined ? undefined : client.rotatedExpiresAt * 1_000,
        };
      }
    }
    return { client, current, rotated };
  }

  /** The live secret a version id or stage names; revoked and unknown versions are WM_ERR_SECRET_VERSION_NOT_FOUND. */
  #resolve(n: SecretName, view: ClientView, version: string): Live {
    const revoked = this.#d.revoked.find(n.clientId, version);
    if (revoked !== undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `version ${version} of '${n.name}' was revoked at ${revoked.revokedAt}`, {
        details: { name: n.name, version, status: 'revoked' },
      });
    }
    if (version === 'current' || version === view.current.version) return view.current;
    const rotated = view.rotated;
    if (rotated !== undefined && this.#d.revoked.find(n.clientId, rotated.version) === undefined && (version === 'previous' || version === rotated.version)) return rotated;
    const why = version === 'pending' ? ' (Keycloak secrets are never pending: a regenerated secret is current at once)' : '';
    throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${n.name}' has no version or stage '${version}'${why}`, { details: { name: n.name, version } });
  }

  #list(n: SecretName, view: ClientView): SecretVersion[] {
    const list = [this.#meta(view.current, 'active', ['current'])];
    const rotated = view.rotated;
    const rotatedRevoked = rotated !== undefined && this.#d.revoked.find(n.clientId, rotated.version) !== undefined;
    if (rotated !== undefined && !rotatedRevoked) list.push(this.#meta(rotated, 'deprecated', ['previous']));
    for (const r of this.#d.revoked.of(n.clientId)) {
      if (r.version !== view.current.version) list.push({ version: r.version, status: 'revoked', stages: [], createdAt: r.createdAt });
    }
    return list;
  }

  #meta(live: Live, status: SecretVersion['status'], stages: string[]): SecretVersion {
    const meta: SecretVersion = { version: live.version, status, stages, createdAt: live.createdAt };
    if (live.expiresAt !== undefined) meta.expiresAt = isoFromMs(live.expiresAt);
    return meta;
  }
}
