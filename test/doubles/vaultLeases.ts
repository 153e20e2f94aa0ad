import { randomBytes } from 'node:crypto';
import { durationSeconds, envelope, errors, HttpAnswer, noContent } from './vaultWire.ts';

/**
 * Dynamic secrets and their leases in the Vault double (reference/protocols.md §1, "Leases"): a database secrets
 * engine whose `GET <mount>/creds/<role>` issues a fresh username and password under a lease, and the system lease
 * endpoints `sys/leases/renew`, `revoke` and `lookup`. A lease ends at its TTL unless renewed, and never later than
 * its role's max TTL from issue: a renewal past it is granted only up to it, with Vault's warning, as clients (Vault
 * Agent, VSO) expect. Revoking ends it at once. Time is checked on every request, so an expired lease is over without
 * a timer.
 *
 * Simplified: no database behind it (the credentials are only checked by {@link LeaseTable.credentialsLive}), no
 * revoke-prefix, no `sys/leases/lookup/<prefix>` listing.
 */

/** A role of the database engine (`vault write <mount>/roles/<role> default_ttl=... max_ttl=...`). */
export interface DatabaseRole {
  defaultTtlSeconds: number;
  /** 0: no max TTL of its own. */
  maxTtlSeconds: number;
  /** Default true; some engines issue leases that cannot be renewed. */
  renewable?: boolean;
}

interface Lease {
  id: string;
  mount: string;
  role: string;
  username: string;
  password: string;
  issuedAt: number;
  lastRenewal: number | undefined;
  expiresAt: number;
  /** undefined: no max TTL. */
  maxExpiresAt: number | undefined;
  defaultTtlSeconds: number;
  renewable: boolean;
  revoked: boolean;
  renewals: number;
}

/** A lease as a test sees it. `username` and `password` are there to be searched for in logs and state. */
export interface LeaseView {
  leaseId: string;
  mount: string;
  role: string;
  username: string;
  password: string;
  issuedAt: number;
  expiresAt: number;
  renewable: boolean;
  renewals: number;
  state: 'live' | 'expired' | 'revoked';
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export class LeaseTable {
  readonly #roles = new Map<string, Map<string, DatabaseRole>>();
  readonly #leases = new Map<string, Lease>();

  /** `vault secrets enable -path=<path> database` with these roles. */
  mountDatabase(path: string, roles: Record<string, DatabaseRole>): void {
    this.#roles.set(path, new Map(Object.entries(roles)));
  }

  /** Mounts of the database engine, for routing. */
  mounts(): string[] {
    return [...this.#roles.keys()];
  }

  /** A request below a database mount (`rest` is the path after `<mount>/`). */
  database(mount: string, method: string, rest: string): HttpAnswer {
    const creds = /^creds\/([^/]+)$/.exec(rest);
    if (creds === null || method !== 'GET') return errors(404, `no handler for route "${mount}/${rest}". route entry not found.`);
    const roleName = creds[1] as string;
    const role = this.#roles.get(mount)?.get(roleName);
    if (role === undefined) return errors(400, `unknown role: ${roleName}`);
    const now = Date.now();
    const lease: Lease = {
      id: `${mount}/creds/${roleName}/${randomBytes(18).toString('base64url')}`,
      mount,
      role: roleName,
      username: `v-token-${roleName}-${randomBytes(10).toString('hex')}`,
      password: `A1a-${randomBytes(15).toString('base64url')}`,
      issuedAt: now,
      lastRenewal: undefined,
      expiresAt: now + role.defaultTtlSeconds * 1000,
      maxExpiresAt: role.maxTtlSeconds > 0 ? now + role.maxTtlSeconds * 1000 : undefined,
      defaultTtlSeconds: role.defaultTtlSeconds,
      renewable: role.renewable ?? true,
      revoked: false,
      renewals: 0,
    };
    this.#leases.set(lease.id, lease);
    return envelope('database', { username: lease.username, password: lease.password }, { lease_id: lease.id, lease_duration: role.defaultTtlSeconds, renewable: lease.renewable });
  }

  /** `sys/leases/<op>` (`op` is the rest of the path). */
  system(method: string, op: string, body: Record<string, unknown>): HttpAnswer {
    if (method !== 'PUT' && method !== 'POST') return errors(405, 'unsupported operation');
    const id = body['lease_id'];
    switch (op) {
      case 'renew':
        return typeof id === 'string' && id !== '' ? this.#renew(id, body['increment']) : errors(400, 'lease_id must be specified');
      case 'revoke': {
        if (typeof id !== 'string' || id === '') return errors(400, 'lease_id must be specified');
        const lease = this.#leases.get(id);
        if (lease !== undefined) lease.revoked = true;
        // An unknown lease is no error: it is as revoked as it will ever be.
        return noContent();
      }
      case 'lookup': {
        const lease = typeof id === 'string' ? this.#leases.get(id) : undefined;
        if (lease === undefined || this.#state(lease) !== 'live') return errors(400, 'invalid lease');
        return envelope('system', {
          id: lease.id,
          issue_time: iso(lease.issuedAt),
          expire_time: iso(lease.expiresAt),
          last_renewal: iso(lease.lastRenewal),
          renewable: lease.renewable,
          ttl: Math.max(0, Math.floor((lease.expiresAt - Date.now()) / 1000)),
        }, { mount_type: 'system' });
      }
      default:
        return errors(404, `no handler for route "sys/leases/${op}". route entry not found.`);
    }
  }

  /** Every lease ever issued, with its state now. */
  leases(): LeaseView[] {
    return [...this.#leases.values()].map((l) => ({
      leaseId: l.id, mount: l.mount, role: l.role, username: l.username, password: l.password, issuedAt: l.issuedAt, expiresAt: l.expiresAt,
      renewable: l.renewable, renewals: l.renewals, state: this.#state(l),
    }));
  }

  /** The leases that are live now. */
  live(): LeaseView[] {
    return this.leases().filter((l) => l.state === 'live');
  }

  /** True while a live lease holds these credentials (what a database would check at login). */
  credentialsLive(username: string, password: string): boolean {
    return this.live().some((l) => l.username === username && l.password === password);
  }

  /** Ends a lease as if its TTL had passed. */
  expireNow(leaseId: string): void {
    const lease = this.#leases.get(leaseId);
    if (lease !== undefined) lease.expiresAt = Math.min(lease.expiresAt, Date.now());
  }

  #state(lease: Lease): LeaseView['state'] {
    if (lease.revoked) return 'revoked';
    return Date.now() >= lease.expiresAt ? 'expired' : 'live';
  }

  #renew(id: string, rawIncrement: unknown): HttpAnswer {
    const lease = this.#leases.get(id);
    if (lease === undefined || lease.revoked) return errors(400, 'lease not found');
    if (this.#state(lease) === 'expired') return errors(400, 'lease expired');
    if (!lease.renewable) return errors(400, 'lease is not renewable');
    const now = Date.now();
    const asked = durationSeconds(rawIncrement) ?? 0;
    const increment = asked > 0 ? asked : lease.defaultTtlSeconds;
    let expiresAt = now + increment * 1000;
    let warnings: string[] | null = null;
    if (lease.maxExpiresAt !== undefined && expiresAt > lease.maxExpiresAt) {
      expiresAt = lease.maxExpiresAt;
      warnings = [`TTL of "${increment}s" exceeded the effective max_ttl of "${Math.max(0, Math.floor((expiresAt - now) / 1000))}s"; TTL value is capped accordingly`];
    }
    lease.expiresAt = expiresAt;
    lease.lastRenewal = now;
    lease.renewals += 1;
    // Renew answers at the top level, not in `data`.
    return new HttpAnswer(200, {
      request_id: randomBytes(16).toString('hex'), lease_id: lease.id, renewable: true, lease_duration: Math.max(0, Math.floor((expiresAt - now) / 1000)),
      data: null, wrap_info: null, warnings, auth: null,
    });
  }
}
