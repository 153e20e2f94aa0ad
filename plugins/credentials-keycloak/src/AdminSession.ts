import type { AdminTokenSource } from './AdminApi.ts';
import type { SecretSource } from './config.ts';
import { readSecretSource } from '@worker-manager/plugin-sdk';
import type { Grant, TokenEndpoint } from './TokenEndpoint.ts';

/**
 * The admin client's access token for the admin API: one grant, reused until it is within the skew of its expiry
 * (at most half its lifetime); concurrent callers share one grant. The secret is re-read from its source at each grant.
 */
export class AdminSession implements AdminTokenSource {
  readonly #endpoint: TokenEndpoint;
  readonly #admin: { clientId: string; secret: SecretSource };
  readonly #stateDir: string;
  readonly #skewMs: number;
  #grant: Grant | undefined;
  #inflight: Promise<Grant> | undefined;

  constructor(endpoint: TokenEndpoint, admin: { clientId: string; secret: SecretSource }, stateDir: string, skewMs: number) {
    this.#endpoint = endpoint;
    this.#admin = admin;
    this.#stateDir = stateDir;
    this.#skewMs = skewMs;
  }

  async token(options: { fresh: boolean; signal?: AbortSignal | undefined }): Promise<string> {
    const grant = this.#grant;
    if (!options.fresh && grant?.expiresAt !== undefined) {
      const skew = Math.min(this.#skewMs, Math.floor((grant.expiresAt - grant.obtainedAt) / 2));
      if (Date.now() < grant.expiresAt - skew) return grant.accessToken;
    }
    this.#inflight ??= this.#fetch(options.signal).finally(() => {
      this.#inflight = undefined;
    });
    return (await this.#inflight).accessToken;
  }

  async #fetch(signal: AbortSignal | undefined): Promise<Grant> {
    const secret = await readSecretSource(this.#admin.secret, `client secret of the admin client '${this.#admin.clientId}'`, this.#stateDir);
    this.#grant = await this.#endpoint.grant(this.#admin.clientId, secret, { signal });
    return this.#grant;
  }
}
