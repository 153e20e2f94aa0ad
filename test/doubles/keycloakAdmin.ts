import { randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type Provider from 'oidc-provider';
import { startTestIdentityProvider, type TestClient, type TestIdentityProvider } from '../helpers/testIdentityProvider.ts';

/**
 * A Keycloak realm for credential-plugin tests: the token endpoint is the shared `oidc-provider` realm
 * (test/helpers/testIdentityProvider.ts), and beside it on the same origin the part of Keycloak's admin REST API a
 * credential plugin calls (../shared/reference/protocols.md §4). Both read one client registry, so a secret the admin
 * API regenerates is the one the token endpoint accepts next, and the rotated one keeps working until its expiry, as
 * Keycloak's `secret-rotation` client-policy executor (ClientSecretRotationExecutor) behaves:
 *
 * - a client authenticates with its current secret while it has not expired, or with its rotated secret until
 *   `client.secret.rotated.expiration.time` (checked at authentication; Keycloak has no background job);
 * - `POST .../client-secret` makes a new secret; with the executor on, the old one becomes the rotated secret for
 *   `rotated-expiration-period` seconds (0 drops it at once); without it, the old one dies at once;
 * - `DELETE .../client-secret/rotated` invalidates the rotated secret.
 *
 * The admin API checks bearer tokens as Keycloak does: signed by the realm, not expired, and carrying
 * `resource_access['realm-management'].roles` with `view-clients` or `manage-clients` for reads and `manage-clients`
 * for changes; anything else is 401 (no or bad token) or 403 (`{"error":"unknown_error"}`, Keycloak 21 to 23).
 */

/** The client roles of Keycloak's `realm-management` client that the admin API checks. */
export type RealmManagementRole = 'view-clients' | 'manage-clients' | 'query-clients' | 'view-realm' | 'manage-realm';

/** A confidential client of the realm, as a test declares it. */
export interface KeycloakClientSeed {
  clientId: string;
  /** The client secret; default a generated one (32 letters and digits, as Keycloak makes them). */
  secret?: string;
  /** Keycloak's "Service accounts roles" switch; default true. Off: the token endpoint answers `unauthorized_client`. */
  serviceAccountsEnabled?: boolean;
  /** Roles of the service account on `realm-management` (they appear in its tokens' `resource_access`). */
  realmManagementRoles?: RealmManagementRole[];
}

/** The `secret-rotation` executor configuration, in seconds, as in a client-policy profile. */
export interface SecretRotationPolicy {
  expirationPeriod: number;
  rotatedExpirationPeriod: number;
  remainingRotationPeriod: number;
}

/** A fault the double applies to the next matching requests. */
export interface KeycloakFault {
  /** `token`: the token endpoint; `admin`: every admin API call; or a pattern over `METHOD path`. */
  match: 'token' | 'admin' | RegExp;
  /**
   * `timeout`: never answers; `reset`: drops the connection; `status`: answers with `status` (5xx by default 503);
   * `invalid-client` (token endpoint): refuses the client's credentials as Keycloak does (401 `invalid_client`), as a
   * node of a Keycloak cluster that has not seen a regenerated secret yet would. Admin API only: `apply-and-hang`
   * carries the request out, then never answers (an answer lost after Keycloak acted on it, or a client that died
   * waiting for it); `hold` keeps the request, not carried out, until `release()`.
   */
  kind: 'timeout' | 'reset' | 'status' | 'invalid-client' | 'apply-and-hang' | 'hold';
  status?: number;
  /** How many requests it hits; default every one until `clearFaults()`. */
  count?: number;
}

/** What the double holds for one client (a test may read it; the plugin never sees it). */
export interface KeycloakClientState {
  readonly id: string;
  readonly clientId: string;
  secret: string;
  /** Epoch seconds, as Keycloak's client attributes hold them. */
  secretCreatedAt: number;
  secretExpiresAt?: number;
  rotated?: { secret: string; createdAt: number; expiresAt: number };
  serviceAccountsEnabled: boolean;
  realmManagementRoles: RealmManagementRole[];
}

/** One request the double saw: `status` is 0 when a fault dropped or held it. */
export interface KeycloakRequest {
  method: string;
  path: string;
  status: number;
  /** For token requests: the client that authenticated (or tried to). */
  clientId?: string;
}

export interface KeycloakDouble {
  /** `http://127.0.0.1:<port>`: the base URL a Keycloak plugin is configured with. */
  readonly baseUrl: string;
  readonly realm: string;
  /** `<baseUrl>/realms/<realm>`. */
  readonly issuer: string;
  readonly idp: TestIdentityProvider;
  /** Every request, in order. */
  readonly requests: KeycloakRequest[];
  /** Token requests of `clientId` that were answered 200. */
  grants(clientId: string): number;
  /**
   * Every client secret the realm generated or was given (current, rotated and long gone) and every access token its
   * token endpoint issued, oldest first: what a redaction test must never find in anything the host emits.
   */
  readonly issued: { readonly secrets: readonly string[]; readonly tokens: readonly string[] };
  client(clientId: string): KeycloakClientState;
  /** Creates a client (Keycloak: POST /admin/realms/{r}/clients); returns its state with the generated secret. */
  addClient(seed: KeycloakClientSeed): KeycloakClientState;
  /** Turns the `secret-rotation` executor on (or off with undefined), as a client policy on confidential clients would. */
  setRotationPolicy(policy: SecretRotationPolicy | undefined): void;
  /** Regenerates a client's secret as the admin API does (for test set-up). */
  regenerate(clientId: string): string;
  fault(fault: KeycloakFault): void;
  clearFaults(): void;
  /** Requests a `hold` fault kept: how many, and a function that carries them out and answers them, in order. */
  readonly holding: number;
  release(): void;
  close(): Promise<void>;
}

export interface KeycloakDoubleOptions {
  realm?: string;
  clients: KeycloakClientSeed[];
  /** Access token lifetime in seconds; default an hour. */
  tokenTtlSeconds?: number;
  /** The `secret-rotation` executor; default off, as in a realm without a client policy. */
  rotation?: SecretRotationPolicy;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Keycloak's SecretGenerator makes 32 letters and digits. */
const newSecret = (): string => Array.from({ length: 32 }, () => ALNUM[randomInt(ALNUM.length)]).join('');
const nowS = (): number => Math.floor(Date.now() / 1000);

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function json(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts the realm and its admin API on 127.0.0.1, port 0. */
export async function startKeycloakDouble(options: KeycloakDoubleOptions): Promise<KeycloakDouble> {
  const realm = options.realm ?? 'ci';
  const clients = new Map<string, KeycloakClientState>();
  const requests: KeycloakRequest[] = [];
  let faults: Array<KeycloakFault & { left: number }> = [];
  let rotation = options.rotation;
  const held = new Set<ServerResponse>();
  let holding: Array<() => void> = [];
  const issued = { secrets: [] as string[], tokens: [] as string[] };
  const adminPrefix = `/admin/realms/${realm}`;
  const tokenPath = `/realms/${realm}/protocol/openid-connect/token`;

  const register = (seed: KeycloakClientSeed): KeycloakClientState => {
    const state: KeycloakClientState = {
      id: randomUUID(),
      clientId: seed.clientId,
      secret: seed.secret ?? newSecret(),
      secretCreatedAt: nowS(),
      serviceAccountsEnabled: seed.serviceAccountsEnabled ?? true,
      realmManagementRoles: seed.realmManagementRoles ?? [],
    };
    if (rotation !== undefined) state.secretExpiresAt = state.secretCreatedAt + rotation.expirationPeriod;
    clients.set(seed.clientId, state);
    issued.secrets.push(state.secret);
    return state;
  };
  for (const seed of options.clients) register(seed);
  const asTestClient = (c: KeycloakClientState): TestClient => ({
    clientId: c.clientId,
    secret: c.secret,
    // Keycloak's default client scopes of a new client.
    scopes: ['profile', 'email'],
    realmRoles: [],
    clientRoles: c.realmManagementRoles.length > 0 ? { 'realm-management': [...c.realmManagementRoles] } : {},
  });

  /** ClientIdAndSecretAuthenticator with the rotation executor: current secret unless expired, else rotated until its expiry. */
  const authenticate = (clientId: string, presented: string): boolean => {
    const c = clients.get(clientId);
    if (c === undefined) return false;
    const now = nowS();
    if (sameText(c.secret, presented)) return c.secretExpiresAt === undefined || now < c.secretExpiresAt;
    if (c.rotated !== undefined && sameText(c.rotated.secret, presented)) {
      if (now < c.rotated.expiresAt) return true;
      delete c.rotated;
    }
    return false;
  };

  const regenerate = (c: KeycloakClientState): string => {
    const now = nowS();
    if (rotation !== undefined && rotation.rotatedExpirationPeriod > 0) {
      c.rotated = { secret: c.secret, createdAt: now, expiresAt: now + rotation.rotatedExpirationPeriod };
    } else {
      delete c.rotated;
    }
    c.secret = newSecret();
    issued.secrets.push(c.secret);
    c.secretCreatedAt = now;
    if (rotation !== undefined) c.secretExpiresAt = now + rotation.expirationPeriod;
    else delete c.secretExpiresAt;
    return c.secret;
  };

  const configure = (provider: Provider): void => {
    // Keycloak compares with the current and the rotated secret (see authenticate); oidc-provider knows one secret.
    provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientId: string }, actual: string): boolean {
      return authenticate(this.clientId, actual);
    };
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path !== '/protocol/openid-connect/token') return;
      const clientId = ctx.oidc?.client?.clientId;
      const body = ctx.body as Record<string, unknown> | undefined;
      const client = clientId === undefined ? undefined : clients.get(clientId);
      if (ctx.status === 200 && client !== undefined && !client.serviceAccountsEnabled) {
        ctx.status = 401;
        ctx.body = { error: 'unauthorized_client', error_description: 'Client not enabled to retrieve service account' };
      } else if (body?.['error'] === 'invalid_client') {
        ctx.body = { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' };
      } else if (ctx.status === 200 && body !== undefined) {
        if (typeof body['access_token'] === 'string') issued.tokens.push(body['access_token']);
        ctx.body = { ...body, refresh_expires_in: 0, 'not-before-policy': 0 };
      }
      const last = requests.findLast((r) => r.path === tokenPath && r.status === -1);
      if (last !== undefined) {
        last.status = ctx.status;
        if (clientId !== undefined) last.clientId = clientId;
      }
    });
  };

  const takeFault = (method: string, path: string): KeycloakFault | undefined => {
    const index = faults.findIndex((f) => {
      if (f.match === 'token') return path === tokenPath;
      if (f.match === 'admin') return path.startsWith(`${adminPrefix}/`) || path === adminPrefix;
      return f.match.test(`${method} ${path}`);
    });
    const fault = faults[index];
    if (fault === undefined) return undefined;
    fault.left -= 1;
    if (fault.left <= 0) faults.splice(index, 1);
    return fault;
  };

  const applyFault = (fault: KeycloakFault, req: IncomingMessage, res: ServerResponse, entry: KeycloakRequest, url: URL): void => {
    if (fault.kind === 'apply-and-hang') {
      // The admin API acts on the request and writes its answer into a response bound to no socket; the client's own
      // response is held like a timeout's.
      entry.status = 0;
      held.add(res);
      res.on('close', () => held.delete(res));
      admin(req, new ServerResponse(req), url, entry).catch((error: unknown) => console.error('keycloak double admin error', error));
      return;
    }
    if (fault.kind === 'hold') {
      holding.push(() => {
        admin(req, res, url, entry).catch((error: unknown) => {
          console.error('keycloak double admin error', error);
          if (!res.headersSent) json(res, 500, { error: 'unknown_error' });
        });
      });
      return;
    }
    if (fault.kind === 'invalid-client') {
      entry.status = 401;
      req.resume();
      return json(res, 401, { error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' });
    }
    if (fault.kind === 'reset') {
      entry.status = 0;
      req.socket.resetAndDestroy();
      return;
    }
    if (fault.kind === 'timeout') {
      entry.status = 0;
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    const status = fault.status ?? 503;
    entry.status = status;
    req.resume();
    if (status === 500) json(res, 500, { error: 'unknown_error' });
    // A 502/503/504 usually comes from the proxy in front of Keycloak, as HTML.
    else res.writeHead(status, { 'content-type': 'text/html' }).end(`<html><body><h1>${status} Service Unavailable</h1></body></html>`);
  };

  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  let issuer = '';

  /** The roles of a valid bearer token, or undefined after answering 401 as Keycloak's admin root does. */
  const bearerRoles = async (req: IncomingMessage, res: ServerResponse): Promise<Set<string> | undefined> => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match?.[1] === undefined) {
      json(res, 401, { error: 'HTTP 401 Unauthorized' });
      return undefined;
    }
    jwks ??= createRemoteJWKSet(new URL(`${issuer}/protocol/openid-connect/certs`));
    try {
      const { payload } = await jwtVerify(match[1], jwks, { issuer, clockTolerance: 0 });
      const access = payload['resource_access'] as Record<string, { roles?: string[] }> | undefined;
      return new Set(access?.['realm-management']?.roles ?? []);
    } catch {
      json(res, 401, { error: 'HTTP 401 Unauthorized' });
      return undefined;
    }
  };

  const representation = (c: KeycloakClientState): Record<string, unknown> => {
    const attributes: Record<string, string> = { 'client.secret.creation.time': String(c.secretCreatedAt) };
    if (c.secretExpiresAt !== undefined) attributes['client.secret.expiration.time'] = String(c.secretExpiresAt);
    if (c.rotated !== undefined) {
      // Keycloak keeps the rotated secret itself in a client attribute, so it shows in the representation.
      attributes['client.secret.rotated'] = c.rotated.secret;
      attributes['client.secret.rotated.creation.time'] = String(c.rotated.createdAt);
      attributes['client.secret.rotated.expiration.time'] = String(c.rotated.expiresAt);
    }
    return {
      id: c.id, clientId: c.clientId, enabled: true, publicClient: false, bearerOnly: false, clientAuthenticatorType: 'client-secret',
      secret: c.secret, serviceAccountsEnabled: c.serviceAccountsEnabled, protocol: 'openid-connect', attributes,
    };
  };

  const admin = async (req: IncomingMessage, res: ServerResponse, url: URL, entry: KeycloakRequest): Promise<void> => {
    const roles = await bearerRoles(req, res);
    if (roles === undefined) return;
    const method = req.method ?? 'GET';
    const rest = url.pathname.slice(adminPrefix.length);
    const canView = roles.has('view-clients') || roles.has('manage-clients');
    const canManage = roles.has('manage-clients');
    const forbidden = (): void => json(res, 403, { error: 'unknown_error' });
    const body = method === 'PUT' || method === 'POST' ? await readBody(req) : '';

    if (rest === '/clients' && method === 'GET') {
      if (!canView && !roles.has('query-clients')) return forbidden();
      const wanted = url.searchParams.get('clientId');
      const list = [...clients.values()].filter((c) => wanted === null || c.clientId === wanted);
      // query-clients alone lists clients without their secrets and attributes.
      return json(res, 200, list.map((c) => (canView ? representation(c) : { id: c.id, clientId: c.clientId })));
    }
    if (rest === '/client-policies/profiles' && method === 'PUT') {
      if (!roles.has('manage-realm')) return forbidden();
      return applyProfiles(res, body);
    }
    if (rest === '/client-policies/policies' && method === 'PUT') {
      if (!roles.has('manage-realm')) return forbidden();
      return applyPolicies(res, body);
    }
    const m = /^\/clients\/([^/]+)(\/.*)?$/.exec(rest);
    const client = m?.[1] === undefined ? undefined : [...clients.values()].find((c) => c.id === m[1]);
    const sub = m?.[2] ?? '';
    if (m === null) return json(res, 404, { error: 'RESTEASY003210: Could not find resource for full path' });
    const needs = method === 'GET' ? canView : canManage;
    if (!needs) return forbidden();
    if (client === undefined) return json(res, 404, { error: 'Could not find client' });
    entry.clientId = client.clientId;
    if (sub === '' && method === 'GET') return json(res, 200, representation(client));
    if (sub === '/client-secret' && method === 'GET') return json(res, 200, { type: 'secret', value: client.secret });
    if (sub === '/client-secret' && method === 'POST') return json(res, 200, { type: 'secret', value: regenerate(client) });
    if (sub === '/client-secret/rotated' && method === 'GET') {
      if (client.rotated === undefined) return json(res, 404, { error: 'Client does not have a rotated secret' });
      return json(res, 200, { type: 'secret', value: client.rotated.secret });
    }
    if (sub === '/client-secret/rotated' && method === 'DELETE') {
      delete client.rotated;
      return json(res, 204);
    }
    if (sub === '/service-account-user' && method === 'GET') {
      if (!client.serviceAccountsEnabled) return json(res, 400, { error: `Service account not enabled for the client '${client.clientId}'` });
      return json(res, 200, { id: client.id, username: `service-account-${client.clientId}`, enabled: true, serviceAccountClientId: client.clientId });
    }
    return json(res, 405, { error: 'RESTEASY003650: No resource method found' });
  };

  // Client policies: the executor is on when an enabled policy names a profile holding a secret-rotation executor.
  let profiles: Array<{ name: string; executors?: Array<{ executor: string; configuration?: Record<string, unknown> }> }> = [];
  let policies: Array<{ name: string; enabled?: boolean; profiles?: string[] }> = [];
  const recompute = (): void => {
    for (const policy of policies) {
      if (policy.enabled !== true) continue;
      for (const name of policy.profiles ?? []) {
        const executor = profiles.find((p) => p.name === name)?.executors?.find((e) => e.executor === 'secret-rotation');
        if (executor === undefined) continue;
        const conf = executor.configuration ?? {};
        const num = (key: string, fallback: number): number => (conf[key] === undefined ? fallback : Number(conf[key]));
        rotation = { expirationPeriod: num('expiration-period', 2_592_000), rotatedExpirationPeriod: num('rotated-expiration-period', 172_800), remainingRotationPeriod: num('remaining-rotation-period', 864_000) };
        return;
      }
    }
    rotation = undefined;
  };
  const applyProfiles = (res: ServerResponse, body: string): void => {
    let parsed: { profiles?: typeof profiles };
    try {
      parsed = JSON.parse(body) as { profiles?: typeof profiles };
    } catch {
      return json(res, 400, { error: 'unknown_error' });
    }
    for (const profile of parsed.profiles ?? []) {
      for (const e of profile.executors ?? []) {
        if (e.executor !== 'secret-rotation') continue;
        const c = e.configuration ?? {};
        const exp = Number(c['expiration-period'] ?? 2_592_000);
        if (Number(c['rotated-expiration-period'] ?? 172_800) > exp || Number(c['remaining-rotation-period'] ?? 864_000) > exp) {
          return json(res, 400, { error: 'invalidConfiguration', error_description: 'Invalid Configuration' });
        }
      }
    }
    profiles = parsed.profiles ?? [];
    recompute();
    json(res, 204);
  };
  const applyPolicies = (res: ServerResponse, body: string): void => {
    try {
      policies = (JSON.parse(body) as { policies?: typeof policies }).policies ?? [];
    } catch {
      return json(res, 400, { error: 'unknown_error' });
    }
    recompute();
    json(res, 204);
  };

  const intercept = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? '/', 'http://double');
    const method = req.method ?? 'GET';
    const isToken = url.pathname === tokenPath;
    // -1 until the realm's middleware records the answer of a token request.
    const entry: KeycloakRequest = { method, path: url.pathname, status: isToken ? -1 : 0 };
    requests.push(entry);
    res.on('finish', () => {
      if (entry.status <= 0) entry.status = res.statusCode;
    });
    const fault = takeFault(method, url.pathname);
    if (fault !== undefined) {
      applyFault(fault, req, res, entry, url);
      return true;
    }
    if (url.pathname === adminPrefix || url.pathname.startsWith(`${adminPrefix}/`)) {
      admin(req, res, url, entry).catch((error: unknown) => {
        console.error('keycloak double admin error', error);
        if (!res.headersSent) json(res, 500, { error: 'unknown_error' });
      });
      return true;
    }
    return false;
  };

  const idp = await startTestIdentityProvider({
    realm,
    clients: [...clients.values()].map(asTestClient),
    ...(options.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: options.tokenTtlSeconds }),
    configure,
    intercept,
  });
  issuer = idp.issuer;
  const baseUrl = issuer.slice(0, issuer.length - `/realms/${realm}`.length);

  const get = (clientId: string): KeycloakClientState => {
    const c = clients.get(clientId);
    if (c === undefined) throw new Error(`the Keycloak double has no client ${clientId}`);
    return c;
  };
  return {
    baseUrl,
    realm,
    issuer,
    idp,
    requests,
    grants: (clientId) => requests.filter((r) => r.path === tokenPath && r.clientId === clientId && r.status === 200).length,
    issued,
    client: get,
    addClient(seed) {
      const state = register(seed);
      idp.addClient(asTestClient(state));
      return state;
    },
    setRotationPolicy(policy) {
      rotation = policy;
    },
    regenerate: (clientId) => regenerate(get(clientId)),
    fault(fault) {
      faults.push({ ...fault, left: fault.count ?? Number.POSITIVE_INFINITY });
    },
    clearFaults() {
      faults = [];
    },
    get holding() {
      return holding.length;
    },
    release() {
      const run = holding;
      holding = [];
      for (const carryOut of run) carryOut();
    },
    async close() {
      for (const res of held) res.destroy();
      await idp.close();
    },
  };
}
