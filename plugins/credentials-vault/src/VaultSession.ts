import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';
import nodeVault from 'node-vault';
import type { ResolvedConfig } from './config.ts';
import { describeSecretSource as describeSource, readSecretSource } from '@worker-manager/plugin-sdk';
import { timerDelay } from './timerDelay.ts';
import { responseFailure, toVaultError, type VaultResponseFailure } from './vaultError.ts';

/** A node-vault client: the library's own type. */
export type VaultClient = nodeVault.client;

/** One request to Vault, as {@link VaultSession.call} runs it. */
export interface VaultRequest<T> {
  operation: string;
  path: string;
  /** Safe to send twice (a read): retried after a transient failure. */
  idempotent: boolean;
  send(client: VaultClient): Promise<T>;
  /**
   * Turns an expected refusal (a 404 for an absent key, a 400 for a cas mismatch) into an answer: return
   * `{ value }` to answer with it, or undefined to let it fail as an error.
   */
  answer?(failure: VaultResponseFailure): { value: T } | undefined;
  /** Turns an expected refusal into its own coded error (a transit key that does not exist); undefined: the usual mapping. */
  refuse?(failure: VaultResponseFailure): WorkerManagerError | undefined;
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

function transient(error: WorkerManagerError): boolean {
  return error.code === 'WM_ERR_NETWORK' || error.code === 'WM_ERR_TIMEOUT';
}

/**
 * The plugin's connection to Vault: a node-vault client, the token it holds and how that token is kept alive.
 *
 * - `token`: renewed with `renew-self` once `tokenRefreshFraction` of its TTL has passed (when it is renewable).
 * - `approle`, `jwt`, `kubernetes`: logged in again at that point, so a token never reaches the end of its TTL; the
 *   credential file is re-read at every login (a Kubernetes token or a secret_id delivered by an agent is rotated).
 *
 * A timer does it in the background (so an idle instance keeps a live token), and every call checks it first (so a
 * timer delayed by a busy thread cannot make a call use an expired token). A 403 `invalid token` (revoked, or expired
 * anyway) triggers one new login and one retry.
 */
export class VaultSession {
  readonly #config: ResolvedConfig;
  readonly #stateDir: string;
  readonly #logger: PluginLogger;
  readonly #client: VaultClient;
  #hasToken = false;
  /** When the token must be renewed or replaced (ms since epoch); undefined: never (a token without TTL). */
  #refreshAt: number | undefined;
  #expiresAt: number | undefined;
  #renewable = false;
  #refreshing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(config: ResolvedConfig, stateDir: string, logger: PluginLogger, ca: string | undefined) {
    this.#config = config;
    this.#stateDir = stateDir;
    this.#logger = logger;
    this.#client = nodeVault({
      endpoint: config.address,
      apiVersion: 'v1',
      ...(config.namespace === undefined ? {} : { namespace: config.namespace }),
      // node-vault's debug output prints request bodies (secret values) when DEBUG matches; it stays off.
      debug: () => {},
      requestOptions: { timeout: config.requestTimeoutMs, ...(ca === undefined ? {} : { ca }) },
    });
    // The library reads VAULT_TOKEN from the environment when given no token; only the configured source counts.
    this.#client.token = '';
  }

  /** Checks what can be checked without Vault: the CA file and the credential sources are readable. */
  static async open(config: ResolvedConfig, stateDir: string, logger: PluginLogger): Promise<VaultSession> {
    let ca: string | undefined;
    if (config.caFile !== undefined) {
      const file = path.resolve(stateDir, config.caFile);
      try {
        ca = await readFile(file, 'utf8');
      } catch (cause) {
        throw new WorkerManagerError('WM_ERR_CONFIGURATION', `caFile ${file} cannot be read`, { details: { reason: 'tls', file, errno: (cause as NodeJS.ErrnoException).code ?? null } });
      }
    }
    const session = new VaultSession(config, stateDir, logger, ca);
    await session.#readCredentials();
    return session;
  }

  /** Runs a request with a live token; maps every failure to a coded error. */
  async call<T>(request: VaultRequest<T>): Promise<T> {
    const subject = { operation: request.operation, path: request.path, address: this.#config.address };
    const attempts = request.idempotent ? this.#config.readRetries + 1 : 1;
    let reauthenticated = false;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#ensureToken();
        return await request.send(this.#client);
      } catch (error) {
        const failure = responseFailure(error);
        const answered = failure === undefined ? undefined : request.answer?.(failure);
        if (answered !== undefined) return answered.value;
        const refused = failure === undefined ? undefined : request.refuse?.(failure);
        if (refused !== undefined) throw refused;
        if (failure?.status === 403 && failure.errors.includes('invalid token') && !reauthenticated) {
          reauthenticated = true;
          this.#logger.warn('vault rejected the token (403 invalid token); logging in again', { method: this.#config.auth.method });
          await this.#forceRefresh(subject);
          attempt -= 1;
          continue;
        }
        const mapped = toVaultError(error, subject);
        if (!transient(mapped) || attempt >= attempts || this.#closed) throw mapped;
        await delay(100 * 2 ** (attempt - 1));
      }
    }
  }

  /** Stops the refresh timer. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #readCredentials(): Promise<{ token?: string; roleId?: string; secret?: string }> {
    const auth = this.#config.auth;
    const dir = this.#stateDir;
    switch (auth.method) {
      case 'token':
        return { token: await readSecretSource(auth.token, 'Vault token', dir) };
      case 'approle':
        return {
          roleId: typeof auth.roleId === 'string' ? auth.roleId : await readSecretSource(auth.roleId, 'AppRole role_id', dir),
          secret: await readSecretSource(auth.secretId, 'AppRole secret_id', dir),
        };
      case 'jwt':
      case 'kubernetes':
        return { secret: await readSecretSource(auth.jwt, auth.method === 'jwt' ? 'JWT' : 'Kubernetes service-account token', dir) };
    }
  }

  async #ensureToken(): Promise<void> {
    if (this.#hasToken && (this.#refreshAt === undefined || Date.now() < this.#refreshAt)) return;
    await this.#refresh();
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= this.#doRefresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #forceRefresh(subject: { operation: string; path: string; address: string }): Promise<void> {
    if (this.#config.auth.method === 'token') {
      // The token file may have been replaced (by an agent); a fresh read is the only way to get a new token.
      this.#hasToken = false;
    } else {
      this.#refreshAt = 0;
    }
    try {
      await this.#refresh();
    } catch (error) {
      throw toVaultError(error, subject);
    }
  }

  async #doRefresh(): Promise<void> {
    const auth = this.#config.auth;
    const subject = (operation: string, p: string): { operation: string; path: string; address: string } => ({ operation, path: p, address: this.#config.address });
    if (auth.method === 'token') {
      if (!this.#hasToken) {
        const { token } = await this.#readCredentials();
        this.#client.token = token as string;
        this.#hasToken = true;
        const lookup = await this.#authCall(subject('token lookup', 'auth/token/lookup-self'), () => this.#client.tokenLookupSelf());
        const data = (lookup as { data?: { ttl?: number; renewable?: boolean } }).data ?? {};
        this.#schedule(typeof data.ttl === 'number' ? data.ttl : 0, data.renewable === true);
        return;
      }
      if (!auth.renew || !this.#renewable) {
        this.#refreshAt = undefined;
        return;
      }
      const renewed = await this.#authCall(subject('token renewal', 'auth/token/renew-self'), () => this.#client.tokenRenewSelf({}));
      const a = (renewed as { auth?: { lease_duration?: number; renewable?: boolean } }).auth ?? {};
      this.#schedule(a.lease_duration ?? 0, a.renewable === true);
      this.#logger.info('vault token renewed', { ttlSeconds: a.lease_duration ?? 0 });
      return;
    }
    const creds = await this.#readCredentials();
    const loginPath = `auth/${auth.mount}/login`;
    const result = await this.#authCall(subject(`${auth.method} login`, loginPath), () => {
      switch (auth.method) {
        case 'approle':
          return this.#client.approleLogin({ mount_point: auth.mount, role_id: creds.roleId, secret_id: creds.secret });
        case 'jwt':
          return this.#client.jwtLogin({ mount_point: auth.mount, role: auth.role, jwt: creds.secret });
        case 'kubernetes':
          return this.#client.kubernetesLogin({ mount_point: auth.mount, role: auth.role, jwt: creds.secret });
      }
    });
    const a = (result as { auth?: { client_token?: unknown; lease_duration?: number; renewable?: boolean } }).auth;
    if (typeof a?.client_token !== 'string' || a.client_token.length === 0) {
      throw new WorkerManagerError('WM_ERR_AUTHENTICATION', `Vault ${auth.method} login at ${loginPath} returned no token`, {
        details: { reason: 'no-token', method: auth.method, path: loginPath },
      });
    }
    this.#client.token = a.client_token;
    this.#hasToken = true;
    this.#schedule(a.lease_duration ?? 0, a.renewable === true);
    this.#logger.info('logged in to vault', { method: auth.method, mount: auth.mount, ttlSeconds: a.lease_duration ?? 0 });
  }

  /** Login and token calls: a refusal there is an authentication failure, whatever the status. */
  async #authCall<T>(subject: { operation: string; path: string; address: string }, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      const failure = responseFailure(error);
      const mapped = toVaultError(error, subject);
      if (failure !== undefined && failure.status >= 400 && failure.status < 500 && failure.status !== 429 && mapped.code !== 'WM_ERR_CONFIGURATION') {
        if (this.#config.auth.method === 'token') this.#hasToken = false;
        const auth = this.#config.auth;
        const source = auth.method === 'token' ? describeSource(auth.token, this.#stateDir) : auth.method === 'approle' ? describeSource(auth.secretId, this.#stateDir) : describeSource(auth.jwt, this.#stateDir);
        throw new WorkerManagerError('WM_ERR_AUTHENTICATION', `${subject.operation} failed: Vault answered ${failure.status}${failure.errors.length > 0 ? ` (${failure.errors.slice(0, 3).join('; ')})` : ''}`, {
          details: { ...subject, status: failure.status, reason: 'login-refused', method: auth.method, credential: source },
        });
      }
      throw mapped;
    }
  }

  /** Plans the next renewal or login from the token's TTL (seconds); 0 means the token does not expire. */
  #schedule(ttlSeconds: number, renewable: boolean): void {
    clearTimeout(this.#timer);
    this.#renewable = renewable;
    if (ttlSeconds <= 0) {
      this.#refreshAt = undefined;
      this.#expiresAt = undefined;
      return;
    }
    const now = Date.now();
    this.#expiresAt = now + ttlSeconds * 1000;
    const canRefresh = this.#config.auth.method !== 'token' || (this.#config.auth.renew && renewable);
    if (!canRefresh) {
      this.#refreshAt = undefined;
      return;
    }
    const wait = Math.max(50, Math.floor(ttlSeconds * 1000 * this.#config.tokenRefreshFraction));
    this.#refreshAt = now + wait;
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#refresh().catch((error: unknown) => {
        const e = error instanceof WorkerManagerError ? error : toVaultError(error, { operation: 'token refresh', path: 'auth', address: this.#config.address });
        // The next call tries again; until the token expires nothing is lost.
        this.#logger.warn('vault token refresh failed; the next call retries', { code: e.code, message: e.message, expiresAt: new Date(this.#expiresAt ?? 0).toISOString() });
      });
    }, timerDelay(wait, 50));
    this.#timer.unref();
  }
}
