import { createPublicKey, randomBytes, randomUUID, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { LeaseTable, type DatabaseRole } from './vaultLeases.ts';
import { TransitEngine } from './vaultTransit.ts';
import { denied, errors, HttpAnswer } from './vaultWire.ts';

/**
 * A HashiCorp Vault double that speaks the HTTP API under /v1 (reference/protocols.md §1): KV version 2 (data,
 * metadata, delete, undelete, destroy, check-and-set), the transit engine (vaultTransit.ts), a database engine whose
 * dynamic credentials come with leases and the `sys/leases` endpoints (vaultLeases.ts), tokens with TTLs
 * (lookup-self, renew-self), AppRole, JWT and Kubernetes login, ACL policies per path glob, and faults on demand
 * (sealed, status codes, resets, hangs).
 *
 * What it simplifies, and why the plugin does not notice: the Kubernetes method verifies the service-account JWT
 * against a configured public key instead of asking the cluster's TokenReview API; `LIST` is only accepted as
 * `GET ?list=true` (Node's HTTP parser refuses unknown methods); namespaces are recorded, not isolated.
 */

/** A capability of a Vault ACL policy rule. */
export type Capability = 'create' | 'read' | 'update' | 'patch' | 'delete' | 'list' | 'sudo' | 'deny';

/** One `path "..." { capabilities = [...] }` stanza. `*` at the end is a prefix glob, `+` one path segment. */
export interface PolicyRule {
  path: string;
  capabilities: Capability[];
}

/** A fault for the next matching requests. */
export type VaultFault =
  | { kind: 'status'; status: number; errors?: string[]; match?: RegExp; method?: string; times?: number }
  | { kind: 'reset' | 'hang'; match?: RegExp; method?: string; times?: number }
  /** Runs `run` (say, another writer's write) before the request is handled as usual. */
  | { kind: 'before'; run: () => unknown; match?: RegExp; method?: string; times?: number };

/** A request as the double saw it: never its body. */
export interface SeenRequest {
  method: string;
  path: string;
  status: number;
  /** Which token it carried (its accessor), if the double knew it. */
  accessor: string | undefined;
  namespace: string | undefined;
}

interface Token {
  id: string;
  accessor: string;
  policies: string[];
  creationTtl: number;
  issuedAt: number;
  /** ms since epoch; undefined: never expires. */
  expiresAt: number | undefined;
  maxExpiresAt: number | undefined;
  renewable: boolean;
  path: string;
}

interface KvVersion {
  data: Record<string, unknown> | null;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

interface KvKey {
  created_time: string;
  updated_time: string;
  current_version: number;
  oldest_version: number;
  max_versions: number;
  cas_required: boolean;
  delete_version_after: string;
  custom_metadata: Record<string, string> | null;
  versions: Map<number, KvVersion>;
}

interface KvMount {
  maxVersions: number;
  casRequired: boolean;
  keys: Map<string, KvKey>;
}

interface AppRole {
  name: string;
  roleId: string;
  secretIds: Set<string>;
  policies: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
}

interface JwtRole {
  policies: string[];
  key: KeyObject;
  boundAudiences: string[];
  boundSubject: string | undefined;
  serviceAccountNames: string[];
  serviceAccountNamespaces: string[];
  ttlSeconds: number;
  maxTtlSeconds: number;
}

interface AuthMount {
  type: 'approle' | 'jwt' | 'kubernetes';
  approles: Map<string, AppRole>;
  jwtRoles: Map<string, JwtRole>;
}

/** A login the double granted. */
export interface Login {
  mount: string;
  at: number;
  accessor: string;
  expiresAt: number | undefined;
}

const now = (): string => new Date().toISOString().replace('Z', '000Z');

/** Matches a Vault policy path: `*` only as the last character (prefix), `+` for exactly one segment. */
function ruleMatches(rule: string, path: string): boolean {
  const glob = rule.endsWith('*');
  const body = glob ? rule.slice(0, -1) : rule;
  const ruleParts = body.split('/');
  const pathParts = path.split('/');
  if (!glob && ruleParts.length !== pathParts.length) return false;
  if (pathParts.length < ruleParts.length) return false;
  for (let i = 0; i < ruleParts.length; i += 1) {
    const r = ruleParts[i] as string;
    const p = pathParts[i] as string;
    const last = i === ruleParts.length - 1;
    if (r === '+') continue;
    if (last && glob ? !p.startsWith(r) : r !== p) return false;
  }
  return true;
}

/** Vault picks the most specific matching rule of a policy: no glob over glob, then the longer prefix. */
function specificity(rule: string): number {
  return (rule.endsWith('*') ? 0 : 1_000_000) + rule.replace(/[*+]/g, '').length * 10 - (rule.match(/\+/g)?.length ?? 0);
}

/** The Vault double. */
export class VaultDouble {
  readonly address: string;
  readonly rootToken: string;
  /** Sealed: every request but sys/health and sys/seal-status answers 503 `Vault is sealed`. */
  sealed = false;
  readonly requests: SeenRequest[] = [];
  readonly logins: Login[] = [];
  /** Dynamic secrets and their leases: every lease issued, live or not, for assertions. */
  readonly leases = new LeaseTable();
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #tokens = new Map<string, Token>();
  readonly #policies = new Map<string, PolicyRule[]>();
  readonly #mounts = new Map<string, KvMount>();
  readonly #transit = new Map<string, TransitEngine>();
  readonly #auth = new Map<string, AuthMount>();
  #faults: Array<VaultFault & { remaining: number }> = [];

  private constructor(server: http.Server) {
    this.#server = server;
    const { port } = server.address() as AddressInfo;
    this.address = `http://127.0.0.1:${port}`;
    this.rootToken = `hvs.root${randomBytes(12).toString('hex')}`;
    this.#tokens.set(this.rootToken, { id: this.rootToken, accessor: 'root', policies: ['root'], creationTtl: 0, issuedAt: Date.now(), expiresAt: undefined, maxExpiresAt: undefined, renewable: false, path: 'auth/token/root' });
    this.#policies.set('default', [
      { path: 'auth/token/lookup-self', capabilities: ['read'] },
      { path: 'auth/token/renew-self', capabilities: ['update'] },
      { path: 'auth/token/revoke-self', capabilities: ['update'] },
      // Vault's built-in default policy lets any token renew and look up a lease whose id it knows; revoking is not in it.
      { path: 'sys/leases/renew', capabilities: ['update'] },
      { path: 'sys/leases/lookup', capabilities: ['update'] },
    ]);
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Starts the double on a free loopback port with a KV v2 engine at `secret/`. */
  static async start(): Promise<VaultDouble> {
    const ready: { self?: VaultDouble } = {};
    const server = http.createServer((req, res) => {
      void (ready.self as VaultDouble).#handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const self = new VaultDouble(server);
    ready.self = self;
    self.mountKv('secret');
    return self;
  }

  /** Mounts a KV version 2 engine (`vault secrets enable -version=2 -path=<path> kv`). */
  mountKv(path: string, options: { maxVersions?: number; casRequired?: boolean } = {}): void {
    this.#mounts.set(path, { maxVersions: options.maxVersions ?? 0, casRequired: options.casRequired ?? false, keys: new Map() });
  }

  /** `vault secrets enable -path=<path> transit`; returns the engine (to create keys, inspect them, or act as an old Vault). */
  mountTransit(path: string): TransitEngine {
    const engine = new TransitEngine();
    this.#transit.set(path, engine);
    return engine;
  }

  /** The transit engine mounted at `path`. */
  transit(path: string): TransitEngine {
    const engine = this.#transit.get(path);
    if (engine === undefined) throw new Error(`no transit engine at ${path}`);
    return engine;
  }

  /** `vault secrets enable -path=<path> database` with these roles; `GET <path>/creds/<role>` issues credentials under a lease. */
  mountDatabase(path: string, roles: Record<string, DatabaseRole>): void {
    this.leases.mountDatabase(path, roles);
  }

  /** `vault policy write <name>`. */
  setPolicy(name: string, rules: PolicyRule[]): void {
    this.#policies.set(name, rules);
  }

  /** A service token with these policies (plus `default`); `ttlSeconds` 0 never expires. */
  createToken(options: { policies: string[]; ttlSeconds?: number; renewable?: boolean; maxTtlSeconds?: number }): string {
    return this.#issue(options.policies, options.ttlSeconds ?? 3600, options.renewable ?? true, options.maxTtlSeconds ?? 0, 'auth/token/create').id;
  }

  /** `vault token revoke`. */
  revokeToken(token: string): void {
    this.#tokens.delete(token);
  }

  /** `vault token revoke -accessor`; true when a token was revoked. */
  revokeAccessor(accessor: string): boolean {
    const token = [...this.#tokens.values()].find((tk) => tk.accessor === accessor);
    return token !== undefined && this.#tokens.delete(token.id);
  }

  /** The accessor of a token (to match {@link SeenRequest.accessor}). */
  accessorOf(token: string): string | undefined {
    return this.#tokens.get(token)?.accessor;
  }

  /** `vault auth enable -path=<mount> approle` and a role; returns its role_id and one secret_id. */
  addAppRole(name: string, options: { policies: string[]; ttlSeconds?: number; maxTtlSeconds?: number; mount?: string }): { roleId: string; secretId: string } {
    const mount = this.#authMount(options.mount ?? 'approle', 'approle');
    const role: AppRole = { name, roleId: randomUUID(), secretIds: new Set([randomUUID()]), policies: options.policies, ttlSeconds: options.ttlSeconds ?? 3600, maxTtlSeconds: options.maxTtlSeconds ?? 0 };
    mount.approles.set(name, role);
    return { roleId: role.roleId, secretId: [...role.secretIds][0] as string };
  }

  /**
   * A role of a JWT (`type: 'jwt'`) or Kubernetes auth method. Tokens must be RS256, signed by `publicKeyPem`'s key,
   * not expired; with `boundAudiences`, `aud` must hold one of them; Kubernetes roles bind the service account
   * (`sub` is `system:serviceaccount:<namespace>:<name>`).
   */
  addJwtRole(
    type: 'jwt' | 'kubernetes',
    role: string,
    options: { publicKeyPem: string; policies: string[]; mount?: string; boundAudiences?: string[]; boundSubject?: string; serviceAccountNames?: string[]; serviceAccountNamespaces?: string[]; ttlSeconds?: number },
  ): void {
    const mount = this.#authMount(options.mount ?? type, type);
    mount.jwtRoles.set(role, {
      policies: options.policies,
      key: createPublicKey(options.publicKeyPem),
      boundAudiences: options.boundAudiences ?? [],
      boundSubject: options.boundSubject,
      serviceAccountNames: options.serviceAccountNames ?? ['*'],
      serviceAccountNamespaces: options.serviceAccountNamespaces ?? ['*'],
      ttlSeconds: options.ttlSeconds ?? 3600,
      maxTtlSeconds: 0,
    });
  }

  /** Queues a fault for the next `times` (default 1) requests whose path (and method, when given) match. */
  fault(fault: VaultFault): void {
    this.#faults.push({ ...fault, remaining: fault.times ?? 1 });
  }

  /** The stored state of a key, for assertions (KV metadata, and whether a version still holds data). */
  inspect(mount: string, path: string): { currentVersion: number; customMetadata: Record<string, string> | null; versions: Record<string, { destroyed: boolean; deleted: boolean; hasData: boolean }> } | undefined {
    const key = this.#mounts.get(mount)?.keys.get(path);
    if (key === undefined) return undefined;
    const versions: Record<string, { destroyed: boolean; deleted: boolean; hasData: boolean }> = {};
    for (const [n, v] of key.versions) versions[String(n)] = { destroyed: v.destroyed, deleted: v.deletion_time !== '', hasData: v.data !== null };
    return { currentVersion: key.current_version, customMetadata: key.custom_metadata === null ? null : { ...key.custom_metadata }, versions };
  }

  /** Closes the server, dropping hung requests. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #authMount(path: string, type: AuthMount['type']): AuthMount {
    let mount = this.#auth.get(path);
    if (mount === undefined) {
      mount = { type, approles: new Map(), jwtRoles: new Map() };
      this.#auth.set(path, mount);
    }
    return mount;
  }

  #issue(policies: string[], ttlSeconds: number, renewable: boolean, maxTtlSeconds: number, path: string): Token {
    const at = Date.now();
    const token: Token = {
      id: `hvs.${randomBytes(18).toString('base64url')}`,
      accessor: randomBytes(12).toString('hex'),
      policies: [...new Set(['default', ...policies])],
      creationTtl: ttlSeconds,
      issuedAt: at,
      expiresAt: ttlSeconds > 0 ? at + ttlSeconds * 1000 : undefined,
      maxExpiresAt: maxTtlSeconds > 0 ? at + maxTtlSeconds * 1000 : undefined,
      renewable: renewable && ttlSeconds > 0,
      path,
    };
    this.#tokens.set(token.id, token);
    return token;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://vault');
    const method = req.method ?? 'GET';
    const raw = url.pathname.startsWith('/v1/') ? url.pathname.slice(4) : '';
    const path = raw.split('/').map((s) => decodeURIComponent(s)).join('/');
    const header = req.headers['x-vault-token'];
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const tokenId = typeof header === 'string' && header !== '' ? header : bearer;
    const ns = req.headers['x-vault-namespace'];
    const seen: SeenRequest = { method, path, status: 0, accessor: tokenId === undefined ? undefined : this.#tokens.get(tokenId)?.accessor, namespace: typeof ns === 'string' ? ns : undefined };
    this.requests.push(seen);

    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);

    const fault = this.#faults.find((f) => f.remaining > 0 && (f.match === undefined || f.match.test(path)) && (f.method === undefined || f.method === method));
    if (fault !== undefined) {
      fault.remaining -= 1;
      this.#faults = this.#faults.filter((f) => f.remaining > 0);
      if (fault.kind === 'before') {
        await fault.run();
      } else if (fault.kind === 'reset') {
        seen.status = -1;
        req.socket.destroy();
        return;
      } else if (fault.kind === 'hang') {
        seen.status = -2;
        return;
      } else if (fault.kind === 'status') {
        this.#send(res, seen, errors(fault.status, ...(fault.errors ?? [])));
        return;
      }
    }

    let answer: HttpAnswer;
    try {
      let body: Record<string, unknown> = {};
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() !== '') {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SyntaxError('not an object');
        body = parsed as Record<string, unknown>;
      }
      answer = this.#route(method, path, url.searchParams, body, tokenId);
    } catch (error) {
      answer = error instanceof SyntaxError ? errors(400, `failed to parse JSON input: ${error.message}`) : errors(500, 'internal error');
    }
    this.#send(res, seen, answer);
  }

  #send(res: http.ServerResponse, seen: SeenRequest, answer: HttpAnswer): void {
    seen.status = answer.status;
    if (answer.status === 204) {
      res.writeHead(204).end();
      return;
    }
    const text = JSON.stringify(answer.body);
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  #route(method: string, path: string, query: URLSearchParams, body: Record<string, unknown>, tokenId: string | undefined): HttpAnswer {
    if (path === 'sys/health' && method === 'GET') {
      return new HttpAnswer(this.sealed ? 503 : 200, { initialized: true, sealed: this.sealed, standby: false, version: '1.17.0-double', cluster_name: 'double' });
    }
    if (path === 'sys/seal-status' && method === 'GET') return new HttpAnswer(200, { type: 'shamir', initialized: true, sealed: this.sealed, t: 1, n: 1, progress: 0 });
    if (this.sealed) return errors(503, 'Vault is sealed');

    const login = /^auth\/(.+)\/login$/.exec(path);
    if (login !== null && (method === 'POST' || method === 'PUT')) {
      const mount = this.#auth.get(login[1] as string);
      if (mount === undefined) return errors(404, `no handler for route "${path}". route entry not found.`);
      return this.#login(login[1] as string, mount, body);
    }

    const token = tokenId === undefined ? undefined : this.#tokens.get(tokenId);
    if (token === undefined) return tokenId === undefined ? denied() : errors(403, 'permission denied', 'invalid token');
    if (token.expiresAt !== undefined && Date.now() >= token.expiresAt) {
      this.#tokens.delete(token.id);
      return errors(403, 'permission denied', 'invalid token');
    }

    const list = method === 'LIST' || (method === 'GET' && (query.get('list') === 'true' || query.get('list') === '1'));
    const capability = this.#capabilityFor(method, path, list);
    if (!this.#allowed(token, path, capability)) return denied();

    if (path === 'auth/token/lookup-self' && method === 'GET') return this.#envelope(this.#lookup(token));
    if (path === 'auth/token/renew-self' && (method === 'POST' || method === 'PUT')) return this.#renew(token, body);

    if (path.startsWith('sys/leases/')) return this.leases.system(method, path.slice('sys/leases/'.length), body);

    const mountPath = this.#mountOf(path);
    if (mountPath === undefined) return errors(404, `no handler for route "${path}". route entry not found.`);
    const rest = path.slice(mountPath.length + 1);
    const transit = this.#transit.get(mountPath);
    if (transit !== undefined) return transit.route(method, rest, body);
    if (this.leases.mounts().includes(mountPath)) return this.leases.database(mountPath, method, rest);
    return this.#kv(this.#mounts.get(mountPath) as KvMount, method, rest, query, body, list);
  }

  /** The longest mount (of any engine) that `path` is under. */
  #mountOf(path: string): string | undefined {
    return [...this.#mounts.keys(), ...this.#transit.keys(), ...this.leases.mounts()].filter((m) => path.startsWith(`${m}/`)).sort((a, b) => b.length - a.length)[0];
  }

  /** Which capability the request needs; POST/PUT on data and metadata is `create` for a new key (Vault's existence check). */
  #capabilityFor(method: string, path: string, list: boolean): Capability {
    if (list) return 'list';
    switch (method) {
      case 'GET':
        return 'read';
      case 'DELETE':
        return 'delete';
      case 'PATCH':
        return 'patch';
      default: {
        const mountPath = this.#mountOf(path);
        if (mountPath === undefined) return 'update';
        const transit = this.#transit.get(mountPath);
        if (transit !== undefined) {
          // Transit's encrypt has an existence check: a key that does not exist yet is created, which takes `create`.
          const encrypt = /^encrypt\/([^/]+)$/.exec(path.slice(mountPath.length + 1));
          return encrypt !== null && !transit.has(encrypt[1] as string) ? 'create' : 'update';
        }
        const rest = /^(data|metadata)\/(.+)$/.exec(path.slice(mountPath.length + 1));
        if (rest !== null && this.#mounts.has(mountPath)) return this.#mounts.get(mountPath)?.keys.has(rest[2] as string) === true ? 'update' : 'create';
        return 'update';
      }
    }
  }

  #allowed(token: Token, path: string, capability: Capability): boolean {
    if (token.policies.includes('root')) return true;
    const granted = new Set<Capability>();
    for (const name of token.policies) {
      const rules = (this.#policies.get(name) ?? []).filter((r) => ruleMatches(r.path, path)).sort((a, b) => specificity(b.path) - specificity(a.path));
      for (const c of rules[0]?.capabilities ?? []) granted.add(c);
    }
    return !granted.has('deny') && granted.has(capability);
  }

  #envelope(data: unknown, extra: Record<string, unknown> = {}): HttpAnswer {
    return new HttpAnswer(200, { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null, mount_type: 'kv', ...extra });
  }

  #remaining(token: Token): number {
    return token.expiresAt === undefined ? 0 : Math.max(0, Math.round((token.expiresAt - Date.now()) / 1000));
  }

  #lookup(token: Token): Record<string, unknown> {
    return {
      accessor: token.accessor,
      creation_time: Math.floor(token.issuedAt / 1000),
      creation_ttl: token.creationTtl,
      display_name: 'token',
      entity_id: '',
      expire_time: token.expiresAt === undefined ? null : new Date(token.expiresAt).toISOString(),
      explicit_max_ttl: 0,
      id: token.id,
      issue_time: new Date(token.issuedAt).toISOString(),
      meta: null,
      num_uses: 0,
      orphan: true,
      path: token.path,
      policies: token.policies,
      renewable: token.renewable,
      ttl: this.#remaining(token),
      type: 'service',
    };
  }

  #authBlock(token: Token, metadata: Record<string, string> | null): Record<string, unknown> {
    return {
      client_token: token.id,
      accessor: token.accessor,
      policies: token.policies,
      token_policies: token.policies,
      metadata,
      lease_duration: this.#remaining(token),
      renewable: token.renewable,
      entity_id: '',
      token_type: 'service',
      orphan: true,
    };
  }

  #renew(token: Token, body: Record<string, unknown>): HttpAnswer {
    if (!token.renewable || token.expiresAt === undefined) return errors(400, 'lease is not renewable');
    const increment = typeof body['increment'] === 'number' ? body['increment'] : typeof body['increment'] === 'string' ? Number.parseInt(body['increment'], 10) : token.creationTtl;
    let expiresAt = Date.now() + increment * 1000;
    if (token.maxExpiresAt !== undefined) expiresAt = Math.min(expiresAt, token.maxExpiresAt);
    token.expiresAt = expiresAt;
    return new HttpAnswer(200, { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: this.#authBlock(token, null) });
  }

  #login(path: string, mount: AuthMount, body: Record<string, unknown>): HttpAnswer {
    let granted: { policies: string[]; ttl: number; maxTtl: number; metadata: Record<string, string> };
    if (mount.type === 'approle') {
      const role = [...mount.approles.values()].find((r) => r.roleId === body['role_id']);
      if (typeof body['role_id'] !== 'string' || body['role_id'] === '') return errors(400, 'missing role_id');
      if (role === undefined || typeof body['secret_id'] !== 'string' || !role.secretIds.has(body['secret_id'])) return errors(400, 'invalid role or secret ID');
      granted = { policies: role.policies, ttl: role.ttlSeconds, maxTtl: role.maxTtlSeconds, metadata: { role_name: role.name } };
    } else {
      const roleName = body['role'];
      const jwt = body['jwt'];
      if (typeof roleName !== 'string' || roleName === '') return errors(400, 'missing role');
      if (typeof jwt !== 'string' || jwt === '') return errors(400, 'missing jwt');
      const role = mount.jwtRoles.get(roleName);
      if (role === undefined) return mount.type === 'jwt' ? errors(400, `role "${roleName}" could not be found`) : errors(400, `invalid role name "${roleName}"`);
      const claims = this.#verifyJwt(jwt, role.key);
      if (typeof claims === 'string') return mount.type === 'jwt' ? errors(400, `error validating token: ${claims}`) : denied();
      if (mount.type === 'jwt') {
        const aud = Array.isArray(claims['aud']) ? claims['aud'] : [claims['aud']];
        if (role.boundAudiences.length > 0 && !aud.some((a) => role.boundAudiences.includes(a as string))) return errors(400, 'error validating token: invalid audience (aud) claim: audience claim does not match any expected audience');
        if (role.boundSubject !== undefined && claims['sub'] !== role.boundSubject) return errors(400, 'sub claim does not match bound subject');
      } else {
        const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(String(claims['sub']));
        if (sa === null) return denied();
        const okNs = role.serviceAccountNamespaces.includes('*') || role.serviceAccountNamespaces.includes(sa[1] as string);
        const okName = role.serviceAccountNames.includes('*') || role.serviceAccountNames.includes(sa[2] as string);
        if (!okNs) return errors(403, 'namespace not authorized');
        if (!okName) return errors(403, 'service account name not authorized');
      }
      granted = { policies: role.policies, ttl: role.ttlSeconds, maxTtl: role.maxTtlSeconds, metadata: { role: roleName } };
    }
    const token = this.#issue(granted.policies, granted.ttl, true, granted.maxTtl, `auth/${path}/login`);
    this.logins.push({ mount: path, at: Date.now(), accessor: token.accessor, expiresAt: token.expiresAt });
    return new HttpAnswer(200, { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null, auth: this.#authBlock(token, granted.metadata) });
  }

  /** RS256 signature and expiry; returns the claims, or why the token is refused. */
  #verifyJwt(jwt: string, key: KeyObject): Record<string, unknown> | string {
    const parts = jwt.split('.');
    if (parts.length !== 3) return 'token is malformed';
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: unknown };
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg?: unknown };
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'token is malformed';
    }
    if (header.alg !== 'RS256') return 'unsupported signing algorithm';
    if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) return 'failed to verify signature';
    if (typeof claims['exp'] === 'number' && claims['exp'] * 1000 < Date.now()) return 'token is expired (exp)';
    return claims;
  }

  #kv(mount: KvMount, method: string, rest: string, query: URLSearchParams, body: Record<string, unknown>, list: boolean): HttpAnswer {
    const m = /^(data|metadata|delete|undelete|destroy)\/(.*)$/.exec(rest);
    if (rest === 'config' && method === 'GET') return this.#envelope({ cas_required: mount.casRequired, delete_version_after: '0s', max_versions: mount.maxVersions });
    if (m === null || (m[2] === '' && !list)) return errors(404, `no handler for route "${rest}". route entry not found.`);
    const [, kind, keyPath] = m as unknown as [string, string, string];
    const key = mount.keys.get(keyPath);
    if (kind === 'metadata' && list) {
      const prefix = keyPath === '' || keyPath.endsWith('/') ? keyPath : `${keyPath}/`;
      const names = new Set<string>();
      for (const k of mount.keys.keys()) {
        if (!k.startsWith(prefix)) continue;
        const tail = k.slice(prefix.length);
        names.add(tail.includes('/') ? `${tail.split('/')[0]}/` : tail);
      }
      return names.size === 0 ? errors(404) : this.#envelope({ keys: [...names].sort() });
    }
    switch (`${kind} ${method}`) {
      case 'data GET':
        return this.#read(key, query);
      case 'data POST':
      case 'data PUT':
        return this.#write(mount, keyPath, key, body);
      case 'data PATCH':
        return this.#patch(mount, keyPath, key, body);
      case 'data DELETE': {
        const latest = key?.versions.get(key.current_version);
        if (latest !== undefined && latest.deletion_time === '' && !latest.destroyed) latest.deletion_time = now();
        return new HttpAnswer(204, null);
      }
      case 'delete POST':
      case 'delete PUT':
      case 'undelete POST':
      case 'undelete PUT':
      case 'destroy POST':
      case 'destroy PUT':
        return this.#versionsOp(kind, key, body);
      case 'metadata GET':
        return key === undefined ? errors(404) : this.#envelope(this.#metadata(key));
      case 'metadata POST':
      case 'metadata PUT':
        return this.#writeMetadata(mount, keyPath, key, body);
      case 'metadata DELETE':
        mount.keys.delete(keyPath);
        return new HttpAnswer(204, null);
      default:
        return errors(405, 'unsupported operation');
    }
  }

  #versionMeta(key: KvKey, n: number, v: KvVersion): Record<string, unknown> {
    return { version: n, created_time: v.created_time, deletion_time: v.deletion_time, destroyed: v.destroyed, custom_metadata: key.custom_metadata };
  }

  #deleted(v: KvVersion): boolean {
    return v.deletion_time !== '' && Date.parse(v.deletion_time) <= Date.now();
  }

  #read(key: KvKey | undefined, query: URLSearchParams): HttpAnswer {
    if (key === undefined) return errors(404);
    const asked = Number.parseInt(query.get('version') ?? '0', 10);
    const n = Number.isNaN(asked) || asked === 0 ? key.current_version : asked;
    const v = key.versions.get(n);
    if (v === undefined) return errors(404);
    if (v.destroyed || this.#deleted(v)) {
      return new HttpAnswer(404, { request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data: { data: null, metadata: this.#versionMeta(key, n, v) }, wrap_info: null, warnings: null, auth: null, mount_type: 'kv' });
    }
    return this.#envelope({ data: v.data, metadata: this.#versionMeta(key, n, v) });
  }

  #newKey(): KvKey {
    const at = now();
    return { created_time: at, updated_time: at, current_version: 0, oldest_version: 0, max_versions: 0, cas_required: false, delete_version_after: '0s', custom_metadata: null, versions: new Map() };
  }

  #write(mount: KvMount, keyPath: string, existing: KvKey | undefined, body: Record<string, unknown>): HttpAnswer {
    const data = body['data'];
    if (data === undefined || data === null) return errors(400, 'no data provided');
    if (typeof data !== 'object' || Array.isArray(data)) return errors(400, 'data must be a JSON object');
    const options = (body['options'] ?? {}) as { cas?: unknown };
    const key = existing ?? this.#newKey();
    const cas = options.cas;
    if (cas === undefined && (mount.casRequired || key.cas_required)) return errors(400, 'check-and-set parameter required for this call');
    if (cas !== undefined && Number(cas) !== key.current_version) return errors(400, 'check-and-set parameter did not match the current version');
    const n = key.current_version + 1;
    const v: KvVersion = { data: data as Record<string, unknown>, created_time: now(), deletion_time: '', destroyed: false };
    key.versions.set(n, v);
    key.current_version = n;
    if (key.oldest_version === 0) key.oldest_version = n;
    key.updated_time = v.created_time;
    this.#prune(mount, key);
    mount.keys.set(keyPath, key);
    return this.#envelope(this.#versionMeta(key, n, v));
  }

  #patch(mount: KvMount, keyPath: string, key: KvKey | undefined, body: Record<string, unknown>): HttpAnswer {
    const latest = key?.versions.get(key.current_version);
    if (key === undefined || latest === undefined || latest.destroyed || this.#deleted(latest) || latest.data === null) return errors(404);
    const patch = body['data'];
    if (typeof patch !== 'object' || patch === null) return errors(400, 'no data provided');
    const merged: Record<string, unknown> = { ...latest.data };
    for (const [k, val] of Object.entries(patch)) {
      if (val === null) delete merged[k];
      else merged[k] = val;
    }
    return this.#write(mount, keyPath, key, { data: merged, ...(body['options'] === undefined ? {} : { options: body['options'] }) });
  }

  #prune(mount: KvMount, key: KvKey): void {
    const max = key.max_versions > 0 ? key.max_versions : mount.maxVersions > 0 ? mount.maxVersions : 10;
    while (key.versions.size > max) {
      key.versions.delete(key.oldest_version);
      key.oldest_version += 1;
    }
  }

  #versionsOp(kind: string, key: KvKey | undefined, body: Record<string, unknown>): HttpAnswer {
    const versions = body['versions'];
    if (!Array.isArray(versions) || versions.length === 0) return errors(400, 'no version number provided');
    if (key === undefined) return new HttpAnswer(204, null);
    for (const raw of versions) {
      const v = key.versions.get(Number(raw));
      if (v === undefined) continue;
      if (kind === 'destroy') {
        v.destroyed = true;
        v.data = null;
      } else if (kind === 'delete') {
        if (v.deletion_time === '' && !v.destroyed) v.deletion_time = now();
      } else if (!v.destroyed) {
        v.deletion_time = '';
      }
    }
    return new HttpAnswer(204, null);
  }

  #metadata(key: KvKey): Record<string, unknown> {
    const versions: Record<string, unknown> = {};
    for (const [n, v] of key.versions) versions[String(n)] = { created_time: v.created_time, deletion_time: v.deletion_time, destroyed: v.destroyed };
    return {
      cas_required: key.cas_required,
      created_time: key.created_time,
      current_version: key.current_version,
      custom_metadata: key.custom_metadata,
      delete_version_after: key.delete_version_after,
      max_versions: key.max_versions,
      oldest_version: key.oldest_version,
      updated_time: key.updated_time,
      versions,
    };
  }

  #writeMetadata(mount: KvMount, keyPath: string, existing: KvKey | undefined, body: Record<string, unknown>): HttpAnswer {
    const key = existing ?? this.#newKey();
    const custom = body['custom_metadata'];
    if (custom !== undefined) {
      if (typeof custom !== 'object' || custom === null || Array.isArray(custom)) return errors(400, 'custom_metadata must be a map of strings');
      const entries = Object.entries(custom);
      if (entries.length > 64) return errors(400, `payload must contain at most 64 keys, provided: ${entries.length}`);
      for (const [k, v] of entries) {
        if (typeof v !== 'string') return errors(400, `custom_metadata value for key "${k}" is not a string`);
        if (k.length > 128) return errors(400, `length of key "${k.slice(0, 16)}…" is ${k.length} which exceeds 128 characters`);
        if (Buffer.byteLength(v) > 512) return errors(400, `length of value for key "${k}" is ${Buffer.byteLength(v)} which exceeds 512 characters`);
      }
      key.custom_metadata = { ...(custom as Record<string, string>) };
    }
    if (typeof body['max_versions'] === 'number') key.max_versions = body['max_versions'];
    if (typeof body['cas_required'] === 'boolean') key.cas_required = body['cas_required'];
    if (typeof body['delete_version_after'] === 'string') key.delete_version_after = body['delete_version_after'];
    key.updated_time = now();
    mount.keys.set(keyPath, key);
    this.#prune(mount, key);
    return new HttpAnswer(204, null);
  }
}
