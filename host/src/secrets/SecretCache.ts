import type { SecretValue } from '@worker-manager/plugin-sdk';

interface Entry {
  credentials: string;
  name: string;
  value: Promise<SecretValue>;
  /** Set once the fetch settles; until then concurrent resolutions share the one fetch. */
  expiresAt: number;
}

/**
 * Short-lived cache of fetched secret values, keyed by credentials instance, name and asked version (a stage or an
 * id). It holds values only, never decisions: the broker checks the tenant before every lookup. A value expires after
 * the configured TTL, or the lease the provider gave, whichever is shorter; `invalidate` drops a secret at once.
 */
export class SecretCache {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** The cached value, or the result of `fetch` (cached when the TTL allows; a failed fetch is not cached). */
  get(credentials: string, name: string, version: string | undefined, fetch: () => Promise<SecretValue>): Promise<SecretValue> {
    if (this.#ttlMs === 0) return fetch();
    const key = JSON.stringify([credentials, name, version ?? 'current']);
    const hit = this.#entries.get(key);
    if (hit !== undefined && hit.expiresAt > this.#now()) return hit.value;
    this.sweep();
    const entry: Entry = { credentials, name, value: fetch(), expiresAt: Number.POSITIVE_INFINITY };
    this.#entries.set(key, entry);
    entry.value.then(
      (v) => {
        const ttl = v.leaseTtlMs === undefined ? this.#ttlMs : Math.min(this.#ttlMs, v.leaseTtlMs);
        entry.expiresAt = this.#now() + ttl;
        if (ttl === 0 && this.#entries.get(key) === entry) this.#entries.delete(key);
      },
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
    return entry.value;
  }

  /** Drops every cached version of a secret, a fetch in flight included (its callers still get its answer). */
  invalidate(credentials: string, name: string): void {
    for (const [key, e] of this.#entries) if (e.credentials === credentials && e.name === name) this.#entries.delete(key);
  }

  /** Drops expired entries so a long-running host does not keep values it will never reuse. */
  sweep(): void {
    const now = this.#now();
    for (const [key, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}
