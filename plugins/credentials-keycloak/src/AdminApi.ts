import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { HttpFetch } from './agentFetch.ts';
import { statusError, transportError, type RequestSubject } from './keycloakError.ts';

/** The fields of Keycloak's ClientRepresentation the plugin uses (it never keeps `secret` or the attribute values). */
export interface ClientInfo {
  /** The client's internal id (uuid) used in admin API paths. */
  id: string;
  clientId: string;
  /** Epoch seconds from the client attributes the secret-rotation executor keeps, when present. */
  secretCreatedAt: number | undefined;
  secretExpiresAt: number | undefined;
  rotatedCreatedAt: number | undefined;
  rotatedExpiresAt: number | undefined;
  /** Whether the attributes say there is a rotated secret. */
  hasRotated: boolean;
}

/** How the plugin gets a token for the admin API: its admin client's grant. */
export interface AdminTokenSource {
  /** A valid access token of the admin client; `fresh` skips any cached one. */
  token(options: { fresh: boolean; signal?: AbortSignal | undefined }): Promise<string>;
}

const seconds = (value: unknown): number | undefined => {
  const n = typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
};

/**
 * The calls of Keycloak's admin REST API the plugin makes, under `/admin/realms/{realm}`. A 401 (the admin token
 * expired early or was revoked) gets one retry with a fresh token; every other failure is a coded error.
 */
export class AdminApi {
  readonly #root: string;
  readonly #tokens: AdminTokenSource;
  readonly #timeoutMs: number;
  readonly #fetch: HttpFetch;
  /** clientId -> internal id: a client's uuid never changes. */
  readonly #ids = new Map<string, string>();

  constructor(options: { baseUrl: string; realm: string; requestTimeoutMs: number; fetch: HttpFetch }, tokens: AdminTokenSource) {
    this.#root = `${options.baseUrl}/admin/realms/${encodeURIComponent(options.realm)}`;
    this.#tokens = tokens;
    this.#timeoutMs = options.requestTimeoutMs;
    this.#fetch = options.fetch;
  }

  /** The client with this clientId, or undefined when the realm has none. */
  async findClient(clientId: string, signal?: AbortSignal): Promise<ClientInfo | undefined> {
    const answer = await this.#call('GET', `/clients?clientId=${encodeURIComponent(clientId)}`, `look up client '${clientId}'`, signal);
    const list = Array.isArray(answer.body) ? (answer.body as Array<Record<string, unknown>>) : [];
    // `clientId=` is an exact match in Keycloak unless `search=true`; checked again all the same.
    const rep = list.find((c) => c['clientId'] === clientId);
    if (rep === undefined || typeof rep['id'] !== 'string') return undefined;
    this.#ids.set(clientId, rep['id']);
    const attributes = (rep['attributes'] ?? {}) as Record<string, unknown>;
    return {
      id: rep['id'],
      clientId,
      secretCreatedAt: seconds(attributes['client.secret.creation.time']),
      secretExpiresAt: seconds(attributes['client.secret.expiration.time']),
      rotatedCreatedAt: seconds(attributes['client.secret.rotated.creation.time']),
      rotatedExpiresAt: seconds(attributes['client.secret.rotated.expiration.time']),
      hasRotated: typeof attributes['client.secret.rotated'] === 'string' || attributes['client.secret.rotated.creation.time'] !== undefined,
    };
  }

  /** The internal id of a client (looked up once), or undefined when the realm has no such client. */
  async clientUuid(clientId: string, signal?: AbortSignal): Promise<string | undefined> {
    return this.#ids.get(clientId) ?? (await this.findClient(clientId, signal))?.id;
  }

  /** The current client secret. */
  async clientSecret(client: ClientInfo, signal?: AbortSignal): Promise<string> {
    return this.#credential(await this.#call('GET', `/clients/${client.id}/client-secret`, `read the client secret of '${client.clientId}'`, signal), client, 'client-secret');
  }

  /** The rotated client secret, or undefined when there is none (404). */
  async rotatedSecret(client: ClientInfo, signal?: AbortSignal): Promise<string | undefined> {
    const answer = await this.#call('GET', `/clients/${client.id}/client-secret/rotated`, `read the rotated client secret of '${client.clientId}'`, signal, [404]);
    if (answer.status === 404) return undefined;
    return this.#credential(answer, client, 'client-secret/rotated');
  }

  /** Regenerates the client secret; Keycloak's rotation executor (when on) keeps the old one as the rotated secret. */
  async regenerateSecret(client: ClientInfo, signal?: AbortSignal): Promise<string> {
    return this.#credential(await this.#call('POST', `/clients/${client.id}/client-secret`, `regenerate the client secret of '${client.clientId}'`, signal), client, 'client-secret');
  }

  /** Invalidates the rotated secret; a client without one is fine (already gone). */
  async deleteRotatedSecret(client: ClientInfo, signal?: AbortSignal): Promise<void> {
    await this.#call('DELETE', `/clients/${client.id}/client-secret/rotated`, `invalidate the rotated client secret of '${client.clientId}'`, signal, [404]);
  }

  #credential(answer: { body: unknown }, client: ClientInfo, path: string): string {
    const value = (answer.body as { value?: unknown } | null)?.value;
    if (typeof value !== 'string' || value.length === 0) {
      throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `Keycloak answered ${path} of client '${client.clientId}' without a credential value`, {
        details: { reason: 'bad-answer', path: `/clients/${client.id}/${path}` },
      });
    }
    return value;
  }

  async #call(method: string, path: string, operation: string, signal: AbortSignal | undefined, allowed: number[] = []): Promise<{ status: number; body: unknown }> {
    const subject: RequestSubject = { operation, path: new URL(`${this.#root}${path}`).pathname };
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.#tokens.token({ fresh: attempt > 0, signal });
      const deadline = AbortSignal.timeout(this.#timeoutMs);
      let response: Response;
      let text: string;
      try {
        response = await this.#fetch(`${this.#root}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
          signal: signal === undefined ? deadline : AbortSignal.any([deadline, signal]),
        });
        text = await response.text();
      } catch (error) {
        throw transportError(error, subject, this.#timeoutMs) ??
          new WorkerManagerError('WM_ERR_NETWORK', `Keycloak ${operation}: the request failed`, { details: { ...subject, reason: 'unreachable' } });
      }
      if (response.status === 401 && attempt === 0) continue;
      let body: unknown;
      try {
        body = text.length === 0 ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (response.ok || allowed.includes(response.status)) return { status: response.status, body };
      const said = (body as { error?: unknown } | undefined)?.error;
      throw statusError(response.status, typeof said === 'string' ? said : undefined, subject);
    }
  }
}
