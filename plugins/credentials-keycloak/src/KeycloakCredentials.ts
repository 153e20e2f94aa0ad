import { WorkerManagerError, type CredentialHandlers, type PluginLogger } from '@worker-manager/plugin-sdk';
import { AdminApi } from './AdminApi.ts';
import type { HttpFetch } from './agentFetch.ts';
import { AdminSession } from './AdminSession.ts';
import { ClientSecrets } from './ClientSecrets.ts';
import type { ResolvedConfig } from './config.ts';
import { readSecretSource } from '@worker-manager/plugin-sdk';
import type { RevokedVersions } from './RevokedVersions.ts';
import { parseSecretName, type SecretName } from './secretNames.ts';
import { TokenEndpoint } from './TokenEndpoint.ts';
import { TokenSecrets } from './TokenSecrets.ts';

/** What the plugin context gives the credentials. */
export interface KeycloakCredentialsContext {
  stateDir: string;
  logger: PluginLogger;
  signal: AbortSignal;
  revoked: RevokedVersions;
  /** How requests reach Keycloak (transport.ts). */
  fetch: HttpFetch;
}

/** Routes each operation by the secret's kind: `token/<clientId>` to TokenSecrets, `client-secret/<clientId>` to ClientSecrets. */
export class KeycloakCredentials {
  readonly #config: ResolvedConfig;
  readonly #ctx: KeycloakCredentialsContext;
  readonly #tokens: TokenSecrets;
  readonly #secrets: ClientSecrets | undefined;
  readonly #admin: AdminApi | undefined;
  /** Client secrets read through the admin API for token grants, by clientId (re-read when Keycloak refuses one). */
  readonly #adminRead = new Map<string, string>();

  constructor(config: ResolvedConfig, ctx: KeycloakCredentialsContext) {
    this.#config = config;
    this.#ctx = ctx;
    const endpoint = new TokenEndpoint({ ...config, fetch: ctx.fetch });
    if (config.admin !== undefined) {
      this.#admin = new AdminApi({ ...config, fetch: ctx.fetch }, new AdminSession(endpoint, config.admin, ctx.stateDir, config.tokenSkewMs));
      this.#secrets = new ClientSecrets({
        admin: this.#admin,
        endpoint,
        revoked: ctx.revoked,
        onRegenerated: (clientId, secret) => this.#adminRead.set(clientId, secret),
        logger: ctx.logger,
        signal: ctx.signal,
      });
    }
    this.#tokens = new TokenSecrets({
      endpoint,
      clientSecret: (n, fresh) => this.#clientSecret(n, fresh),
      canReread: (n) => n.served.secret === 'admin' || 'file' in n.served.secret,
      skewMs: config.tokenSkewMs,
      logger: ctx.logger,
      signal: ctx.signal,
    });
  }

  handlers(): CredentialHandlers {
    const name = (n: string): SecretName => parseSecretName(n, this.#config.clients);
    return {
      getSecret: async ({ name: n, version }) => {
        const s = name(n);
        return s.kind === 'token' ? this.#tokens.getSecret(s, version) : this.#clientSecrets().getSecret(s, version);
      },
      listVersions: async ({ name: n }) => {
        const s = name(n);
        return s.kind === 'token' ? this.#tokens.listVersions(s) : this.#clientSecrets().listVersions(s);
      },
      describe: async ({ name: n }) => {
        const s = name(n);
        return s.kind === 'token' ? this.#tokens.describe(s) : this.#clientSecrets().describe(s);
      },
      createPendingVersion: async ({ name: n, value }) => this.#clientSecrets().createPendingVersion(this.#rotatable(name(n), 'createPendingVersion'), value),
      testVersion: async ({ name: n, version }) => this.#clientSecrets().testVersion(this.#rotatable(name(n), 'testVersion'), version),
      promoteVersion: async ({ name: n, version }) => this.#clientSecrets().promoteVersion(this.#rotatable(name(n), 'promoteVersion'), version),
      revokeVersion: async ({ name: n, version }) => this.#clientSecrets().revokeVersion(this.#rotatable(name(n), 'revokeVersion'), version),
    };
  }

  /** Tokens rotate by expiring: the rotation operations are for client secrets only. */
  #rotatable(s: SecretName, operation: string): SecretName {
    if (s.kind === 'token') {
      throw new WorkerManagerError('WM_ERR_COMPATIBILITY', `${operation} does not apply to '${s.name}': a token is replaced on its own before it expires; rotate client-secret/${s.clientId} instead`, {
        details: { name: s.name, operation, reason: 'token-not-rotatable' },
      });
    }
    return s;
  }

  #clientSecrets(): ClientSecrets {
    // setup refuses rotate: true without admin, so this holds for every client-secret name parseSecretName lets through.
    if (this.#secrets === undefined) throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'client-secret/<clientId> needs admin in the instance config', { details: { reason: 'no-admin' } });
    return this.#secrets;
  }

  /** The secret a token grant of this client uses: from its file or variable, or read through the admin API. */
  async #clientSecret(n: SecretName, fresh: boolean): Promise<string> {
    const source = n.served.secret;
    if (source !== 'admin') return readSecretSource(source, `client secret of '${n.clientId}'`, this.#ctx.stateDir);
    const cached = this.#adminRead.get(n.clientId);
    if (!fresh && cached !== undefined) return cached;
    if (this.#admin === undefined) throw new WorkerManagerError('WM_ERR_CONFIGURATION', `client '${n.clientId}' reads its secret through the admin API, but the instance has no admin`, { details: { reason: 'no-admin' } });
    const client = await this.#admin.findClient(n.clientId, this.#ctx.signal);
    if (client === undefined) {
      throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${n.name}': realm has no client '${n.clientId}'`, { details: { name: n.name, clientId: n.clientId } });
    }
    const secret = await this.#admin.clientSecret(client, this.#ctx.signal);
    this.#adminRead.set(n.clientId, secret);
    return secret;
  }
}
