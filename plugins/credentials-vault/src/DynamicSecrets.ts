import { WorkerManagerError, type CallContext, type CredentialHandlers, type SecretValue, type SecretVersion } from '@worker-manager/plugin-sdk';
import type { DynamicSecrets as DynamicConfig, ResolvedConfig } from './config.ts';
import type { LeaseKeeper } from './LeaseKeeper.ts';
import { handleOf, isHandle, type LeaseStore } from './LeaseStore.ts';
import type { VaultSession } from './VaultSession.ts';

type KvHandlers = Omit<CredentialHandlers, 'close'>;

/** A role name: one clean Vault path segment. */
const ROLE = /^[A-Za-z0-9_@=,+-][A-Za-z0-9_.@=,+-]*$/;

/** Where a dynamic secret name leads: its engine and role. */
interface Target {
  name: string;
  engine: DynamicConfig;
  role: string;
}

/** What a dynamic-secrets engine answers to `GET <mount>/creds/<role>`. */
interface CredsAnswer {
  lease_id?: unknown;
  lease_duration?: unknown;
  renewable?: unknown;
  data?: Record<string, unknown> | null;
}

/**
 * Secret names under a configured `dynamic` prefix: `<prefix>/<role>` is a credential the engine at `<mount>` issues
 * under a lease (`GET <mount>/creds/<role>`: the database engine, RabbitMQ, Consul, ...). Each read of `current`
 * issues a new one; its version names the lease (capability `secret.lease`), which the plugin renews until the host
 * releases it, then revokes. `listVersions` shows the leases the instance holds; the value is never kept anywhere, so
 * an issued credential cannot be read again. Writes and rotation are Vault's business: `WM_ERR_COMPATIBILITY`.
 */
export class DynamicSecrets {
  readonly #config: ResolvedConfig;
  readonly #session: VaultSession;
  readonly #store: LeaseStore;
  readonly #keeper: LeaseKeeper;

  constructor(config: ResolvedConfig, deps: { session: VaultSession; store: LeaseStore; keeper: LeaseKeeper }) {
    this.#config = config;
    this.#session = deps.session;
    this.#store = deps.store;
    this.#keeper = deps.keeper;
  }

  /** The KV handlers, with every operation on a dynamic name taken here, and `releaseLease`. */
  around(kv: KvHandlers): KvHandlers & Required<Pick<CredentialHandlers, 'releaseLease'>> {
    /** `dynamic` for a dynamic name (refused when absent), else the KV handler. */
    const either = <P extends { name: string }, R>(operation: string, dynamic: ((t: Target, p: P) => Promise<R>) | undefined, fallback: (p: P, c: CallContext) => Promise<R>) =>
      async (p: P, c: CallContext): Promise<R> => {
        const target = this.#target(p.name);
        if (target === undefined) return fallback(p, c);
        if (dynamic === undefined) throw this.#unsupported(operation, p.name);
        return dynamic(target, p);
      };
    const handlers: KvHandlers & Required<Pick<CredentialHandlers, 'releaseLease'>> = {
      ...kv,
      getSecret: either('getSecret', (t, p) => this.getSecret(t, p.version), kv.getSecret),
      listVersions: either('listVersions', (t) => this.listVersions(t), kv.listVersions),
      describe: either('describe', async (t) => ({ name: t.name, versions: (await this.listVersions(t)).length }), kv.describe),
      releaseLease: async ({ name, version }) => {
        if (this.#target(name) === undefined || !isHandle(version)) return { released: false };
        const record = await this.#store.get(version);
        if (record !== undefined && record.name !== name) return { released: false };
        return { released: await this.#keeper.release(version) };
      },
    };
    // Writes and rotation steps: Vault's business for a dynamic name.
    if (kv.putSecret !== undefined) handlers.putSecret = either('putSecret', undefined, kv.putSecret);
    if (kv.createPendingVersion !== undefined) handlers.createPendingVersion = either('createPendingVersion', undefined, kv.createPendingVersion);
    if (kv.testVersion !== undefined) handlers.testVersion = either('testVersion', undefined, kv.testVersion);
    if (kv.promoteVersion !== undefined) handlers.promoteVersion = either('promoteVersion', undefined, kv.promoteVersion);
    if (kv.revokeVersion !== undefined) handlers.revokeVersion = either('revokeVersion', undefined, kv.revokeVersion);
    return handlers;
  }

  /** A fresh credential under a new lease; any version but `current` is not readable (values are never kept). */
  async getSecret(target: Target, version: string | undefined): Promise<SecretValue> {
    if (version !== undefined && version !== 'current') {
      throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${target.name}' is a dynamic secret: each read of current issues a new credential, and an issued one cannot be read again`, {
        details: { name: target.name, version },
      });
    }
    const p = `${target.engine.mount}/creds/${encodeURIComponent(target.role)}`;
    const answer = await this.#session.call<CredsAnswer>({
      operation: 'dynamic secret read',
      path: p,
      // Each read issues a credential: a blind retry after a lost answer would leave one nobody releases.
      idempotent: false,
      send: async (c) => (await c.read(p)) as CredsAnswer,
      refuse: (f) =>
        f.status === 400 && f.errors.some((e) => e.startsWith('unknown role'))
          ? new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no role '${target.role}' in the secrets engine at ${target.engine.mount}`, { details: { name: target.name, path: p, status: f.status, reason: 'unknown-role' } })
          : undefined,
    });
    const leaseId = answer.lease_id;
    const duration = typeof answer.lease_duration === 'number' ? answer.lease_duration : 0;
    if (typeof leaseId !== 'string' || leaseId === '') {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `Vault dynamic secret read ${p}: the answer has no lease; '${target.engine.mount}' is not a dynamic secrets engine`, {
        details: { name: target.name, path: p, reason: 'not-leased' },
      });
    }
    const value = credentialOf(answer.data, target.name);
    const now = Date.now();
    const renewable = answer.renewable === true && duration > 0;
    const handle = handleOf(leaseId);
    try {
      await this.#keeper.track({ handle, name: target.name, leaseId, issuedAt: now, durationS: duration, expiresAt: now + duration * 1000, renewable, final: !renewable });
    } catch (error) {
      // Not recorded, so nobody could ever release it: the credential is revoked now instead of handed out.
      await this.#session.call({ operation: 'lease revocation', path: 'sys/leases/revoke', idempotent: true, send: (c) => c.revoke({ lease_id: leaseId }) }).catch(() => undefined);
      throw new WorkerManagerError('WM_ERR_INTERNAL', `dynamic secret '${target.name}': the lease could not be recorded in the state folder, so the credential was revoked`, {
        details: { name: target.name, reason: 'lease-not-recorded', errno: (error as NodeJS.ErrnoException | null)?.code ?? null },
      });
    }
    return { name: target.name, version: handle, value, lease: { renewable }, ...(renewable ? {} : { leaseTtlMs: duration * 1000 }) };
  }

  async listVersions(target: Target): Promise<SecretVersion[]> {
    const now = Date.now();
    return (await this.#store.list())
      .filter((r) => r.name === target.name && r.expiresAt > now)
      .map((r) => ({ version: r.handle, status: 'active', stages: [], createdAt: new Date(r.issuedAt).toISOString(), expiresAt: new Date(r.expiresAt).toISOString() }));
  }

  #target(name: string): Target | undefined {
    const engine = this.#config.dynamic.find((d) => name.startsWith(`${d.prefix}/`));
    if (engine === undefined) return undefined;
    const role = name.slice(engine.prefix.length + 1);
    if (!ROLE.test(role)) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `secret name '${name}' is under the dynamic prefix '${engine.prefix}/': what follows must be one role name (letters, digits and _ . @ = , + -, not starting with '.')`, {
        details: { name, reason: 'bad-name' },
      });
    }
    return { name, engine, role };
  }

  #unsupported(operation: string, name: string): WorkerManagerError {
    return new WorkerManagerError('WM_ERR_COMPATIBILITY', `secret '${name}' is a dynamic secret: Vault issues its credentials under leases, so ${operation} does not apply`, {
      details: { name, operation },
    });
  }
}

/** The credential in an engine's `data`: strings as they are, numbers and booleans as text, nulls left out. */
function credentialOf(data: Record<string, unknown> | null | undefined, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else throw new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `dynamic secret '${name}': the engine answered a ${Array.isArray(v) ? 'list' : typeof v} under key '${k}'; only flat values can be delivered`, { details: { name, key: k } });
  }
  if (Object.keys(out).length === 0) throw new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `dynamic secret '${name}': the engine answered no credential`, { details: { name } });
  return out;
}
