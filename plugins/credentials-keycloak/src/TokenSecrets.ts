import { WorkerManagerError, type PluginLogger, type SecretValue, type SecretVersion } from '@worker-manager/plugin-sdk';
import { fingerprint, isoFromMs, type SecretName } from './secretNames.ts';
import type { Grant, TokenEndpoint } from './TokenEndpoint.ts';

interface Cached {
  grant: Grant;
  version: string;
}

/** What TokenSecrets needs from the rest of the plugin. */
export interface TokenSecretsDeps {
  endpoint: TokenEndpoint;
  /** The client secret to use for a grant; `fresh` re-reads it (after Keycloak refused the one in hand). */
  clientSecret(name: SecretName, fresh: boolean): Promise<string>;
  /** Whether a refused grant is worth one retry with a re-read secret (its source may have changed). */
  canReread(name: SecretName): boolean;
  skewMs: number;
  logger: PluginLogger;
  signal: AbortSignal;
}

/** Expired token versions remembered per client, to answer WM_ERR_SECRET_EXPIRED rather than "no such version". */
const EXPIRED_KEPT = 16;

/**
 * `token/<clientId>`: an access token of the client's service account. One grant serves every read until the token is
 * within the skew of its expiry (the skew is at most half the token's lifetime); concurrent reads share one grant. The
 * token replaced by a refresh stays readable as `previous` until it expires.
 */
export class TokenSecrets {
  readonly #d: TokenSecretsDeps;
  readonly #current = new Map<string, Cached>();
  readonly #previous = new Map<string, Cached>();
  readonly #expired = new Map<string, Map<string, number>>();
  readonly #inflight = new Map<string, Promise<Cached>>();

  constructor(deps: TokenSecretsDeps) {
    this.#d = deps;
  }

  async getSecret(n: SecretName, version: string | undefined): Promise<SecretValue> {
    if (version === undefined || version === 'current') return this.#value(n, await this.#ensure(n));
    const now = Date.now();
    const current = this.#current.get(n.clientId);
    const previous = this.#previous.get(n.clientId);
    const byStage = version === 'previous' ? previous : undefined;
    const found = byStage ?? [current, previous].find((c) => c?.version === version);
    if (found !== undefined) {
      if (found.grant.expiresAt !== undefined && found.grant.expiresAt <= now) throw this.#expiredError(n, found.version, found.grant.expiresAt);
      return this.#value(n, found);
    }
    const expiredAt = this.#expired.get(n.clientId)?.get(version);
    if (expiredAt !== undefined && expiredAt <= now) throw this.#expiredError(n, version, expiredAt);
    throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${n.name}' has no version or stage '${version}' (a token has current and, after a refresh, previous)`, {
      details: { name: n.name, version },
    });
  }

  async listVersions(n: SecretName): Promise<SecretVersion[]> {
    const current = await this.#ensure(n);
    const list: SecretVersion[] = [this.#meta(current, 'active', ['current'])];
    const previous = this.#previous.get(n.clientId);
    if (previous !== undefined && (previous.grant.expiresAt === undefined || previous.grant.expiresAt > Date.now())) list.push(this.#meta(previous, 'deprecated', ['previous']));
    return list;
  }

  async describe(n: SecretName): Promise<{ name: string; currentVersion: string; versions: number }> {
    const list = await this.listVersions(n);
    return { name: n.name, currentVersion: list[0]?.version ?? '', versions: list.length };
  }

  #skew(grant: Grant): number {
    if (grant.expiresAt === undefined) return 0;
    return Math.min(this.#d.skewMs, Math.floor((grant.expiresAt - grant.obtainedAt) / 2));
  }

  #value(n: SecretName, c: Cached): SecretValue {
    const value: SecretValue = { name: n.name, version: c.version, value: c.grant.accessToken };
    if (c.grant.expiresAt !== undefined) value.leaseTtlMs = Math.max(0, c.grant.expiresAt - this.#skew(c.grant) - Date.now());
    return value;
  }

  #meta(c: Cached, status: SecretVersion['status'], stages: string[]): SecretVersion {
    const meta: SecretVersion = { version: c.version, status, stages, createdAt: isoFromMs(c.grant.obtainedAt) };
    if (c.grant.expiresAt !== undefined) meta.expiresAt = isoFromMs(c.grant.expiresAt);
    return meta;
  }

  #expiredError(n: SecretName, version: string, expiresAt: number): WorkerManagerError {
    return new WorkerManagerError('WM_ERR_SECRET_EXPIRED', `version ${version} of '${n.name}' expired at ${isoFromMs(expiresAt)}; read current for a fresh token`, {
      details: { name: n.name, version, expiresAt: isoFromMs(expiresAt) },
    });
  }

  /** The cached token while it is outside its skew window, else a new grant (one at a time per client). */
  async #ensure(n: SecretName): Promise<Cached> {
    const cached = this.#current.get(n.clientId);
    if (cached?.grant.expiresAt !== undefined && Date.now() < cached.grant.expiresAt - this.#skew(cached.grant)) return cached;
    let pending = this.#inflight.get(n.clientId);
    if (pending === undefined) {
      pending = this.#refresh(n, cached).finally(() => this.#inflight.delete(n.clientId));
      this.#inflight.set(n.clientId, pending);
    }
    return pending;
  }

  async #refresh(n: SecretName, cached: Cached | undefined): Promise<Cached> {
    let grant: Grant;
    try {
      grant = await this.#grant(n);
    } catch (error) {
      // Keycloak is briefly unreachable but the token in hand has not expired: serve it (lease 0) rather than fail.
      const transient = error instanceof WorkerManagerError && error.transient;
      if (transient && cached?.grant.expiresAt !== undefined && cached.grant.expiresAt > Date.now()) {
        this.#d.logger.warn('token refresh failed; serving the cached token until it expires', {
          name: n.name, version: cached.version, code: error.code, expiresAt: isoFromMs(cached.grant.expiresAt),
        });
        return cached;
      }
      throw error;
    }
    const fresh: Cached = { grant, version: fingerprint('token', n.clientId, grant.accessToken) };
    if (cached !== undefined && cached.version !== fresh.version) {
      this.#previous.set(n.clientId, cached);
      if (cached.grant.expiresAt !== undefined) this.#rememberExpiry(n.clientId, cached.version, cached.grant.expiresAt);
    }
    this.#current.set(n.clientId, fresh);
    this.#d.logger.debug('token obtained', { name: n.name, version: fresh.version, ...(grant.expiresAt === undefined ? {} : { expiresAt: isoFromMs(grant.expiresAt) }) });
    return fresh;
  }

  async #grant(n: SecretName): Promise<Grant> {
    const options = { scope: n.served.scope, signal: this.#d.signal };
    try {
      return await this.#d.endpoint.grant(n.clientId, await this.#d.clientSecret(n, false), options);
    } catch (error) {
      // The secret in hand may be stale (rotated in Keycloak since it was read): read it again, once.
      if (!(error instanceof WorkerManagerError) || error.code !== 'WM_ERR_AUTHENTICATION' || !this.#d.canReread(n)) throw error;
      return this.#d.endpoint.grant(n.clientId, await this.#d.clientSecret(n, true), options);
    }
  }

  #rememberExpiry(clientId: string, version: string, expiresAt: number): void {
    const seen = this.#expired.get(clientId) ?? new Map<string, number>();
    seen.set(version, expiresAt);
    while (seen.size > EXPIRED_KEPT) seen.delete(seen.keys().next().value as string);
    this.#expired.set(clientId, seen);
  }
}
