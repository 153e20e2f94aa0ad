import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';
import type { LeaseRecord, LeaseStore } from './LeaseStore.ts';
import { timerDelay } from './timerDelay.ts';
import type { VaultSession } from './VaultSession.ts';

/** After a renewal that failed on the way (Vault unreachable, sealed), the next try, if the lease lasts that long. */
const RETRY_MS = 5_000;
/** Never sooner: a lease with a TTL of a second must not make a thread renew in a loop. */
const MIN_DELAY_MS = 250;

/** Vault's 400 answers of `sys/leases/renew` for a lease that is over. */
const GONE = ['lease not found', 'lease expired', 'lease is not renewable', 'invalid lease'];

/**
 * Keeps the leases of dynamic secrets alive until the host releases them: each is renewed (`PUT sys/leases/renew`,
 * asking for the TTL it was issued with) once `leaseRenewFraction` of its remaining time has passed, and revoked
 * (`PUT sys/leases/revoke`) on release. When Vault grants less than asked (the role's max TTL), the lease is final:
 * it is not renewed again and ends then; a warning says when. Closing the plugin does not revoke anything: workers
 * may still use the credentials, and a restarted plugin picks the leases up from the store.
 *
 * node-vault's `startLeaseRenewal` is not used: it renews in whole seconds (late for a short lease), gives up at the
 * first failed renewal, bypasses the session's token refresh and retries, and emits the lease id with its events.
 * The one-shot `renew` and `revoke` commands are used instead.
 */
export class LeaseKeeper {
  readonly #session: VaultSession;
  readonly #store: LeaseStore;
  readonly #logger: PluginLogger;
  readonly #fraction: number;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  /** The record as this thread last wrote or read it: a newer `renewedAt` in the store means another thread renewed. */
  readonly #seen = new Map<string, LeaseRecord>();
  #closed = false;

  constructor(deps: { session: VaultSession; store: LeaseStore; logger: PluginLogger; renewFraction: number }) {
    this.#session = deps.session;
    this.#store = deps.store;
    this.#logger = deps.logger;
    this.#fraction = deps.renewFraction;
  }

  /** Takes over the leases in the store (a restarted plugin, another thread's): ended ones are dropped, the rest renewed on time. */
  async adopt(): Promise<void> {
    for (const record of await this.#store.list()) {
      if (record.expiresAt <= Date.now()) await this.#store.remove(record.handle);
      else this.#arm(record);
    }
  }

  /** A lease just issued: stored before its value leaves the plugin, so a release from any thread finds it. */
  async track(record: LeaseRecord): Promise<void> {
    await this.#store.put(record);
    this.#arm(record);
  }

  /**
   * Revokes a lease in Vault and forgets it; false when it was not held (already released, or ended). Renewals stop
   * first: should the revocation fail, the host asks again later, and meanwhile the lease lapses at its TTL rather
   * than outlive the workers that used it.
   */
  async release(handle: string): Promise<boolean> {
    const record = await this.#store.get(handle);
    this.#forget(handle);
    if (record === undefined) return false;
    await this.#session.call({ operation: 'lease revocation', path: 'sys/leases/revoke', idempotent: true, send: (c) => c.revoke({ lease_id: record.leaseId }) });
    await this.#store.remove(handle);
    this.#logger.info('dynamic secret lease revoked', { name: record.name, version: handle });
    return true;
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #forget(handle: string): void {
    clearTimeout(this.#timers.get(handle));
    this.#timers.delete(handle);
    this.#seen.delete(handle);
  }

  /** Plans the next step of a lease: its renewal, or (final, not renewable) dropping it once it has ended. */
  #arm(record: LeaseRecord): void {
    if (this.#closed) return;
    this.#forget(record.handle);
    this.#seen.set(record.handle, record);
    const now = Date.now();
    const from = record.renewedAt ?? record.issuedAt;
    const renewable = record.renewable && !record.final;
    const at = renewable ? from + (record.expiresAt - from) * this.#fraction : record.expiresAt;
    const timer = setTimeout(() => void (renewable ? this.#renew(record.handle) : this.#ended(record.handle)), timerDelay(at - now, MIN_DELAY_MS));
    timer.unref();
    this.#timers.set(record.handle, timer);
  }

  async #ended(handle: string): Promise<void> {
    this.#forget(handle);
    const record = await this.#store.get(handle);
    if (record === undefined) return;
    // A timer capped at its longest delay fires before the end: plan again.
    if (record.expiresAt <= Date.now()) await this.#store.remove(handle);
    else this.#arm(record);
  }

  async #renew(handle: string): Promise<void> {
    this.#timers.delete(handle);
    if (this.#closed) return;
    const mine = this.#seen.get(handle);
    let record: LeaseRecord | undefined;
    try {
      record = await this.#store.get(handle);
    } catch (error) {
      this.#logger.warn('dynamic secret lease record unreadable; the lease ends at its TTL', { version: handle, errno: (error as NodeJS.ErrnoException).code ?? null });
      this.#forget(handle);
      return;
    }
    // Released (by any thread) meanwhile.
    if (record === undefined) return this.#forget(handle);
    // Another thread renewed it since this one last looked: follow its schedule instead of renewing again.
    if ((record.renewedAt ?? 0) > (mine?.renewedAt ?? 0) || record.final) return this.#arm(record);
    if (record.expiresAt <= Date.now()) {
      this.#logger.warn('dynamic secret lease ended before it could be renewed', { name: record.name, version: handle });
      await this.#store.remove(handle);
      return this.#forget(handle);
    }
    const leaseId = record.leaseId;
    try {
      const answer = await this.#session.call<{ lease_duration?: unknown; renewable?: unknown } | 'gone'>({
        operation: 'lease renewal',
        path: 'sys/leases/renew',
        idempotent: true,
        send: async (c) => (await c.renew({ lease_id: leaseId, increment: record.durationS })) as { lease_duration?: unknown; renewable?: unknown },
        answer: (f) => (f.status === 400 && f.errors.some((e) => GONE.includes(e)) ? { value: 'gone' } : undefined),
      });
      if (answer === 'gone') {
        this.#logger.warn('dynamic secret lease is over in Vault; it is no longer renewed', { name: record.name, version: handle });
        await this.#store.remove(handle);
        return this.#forget(handle);
      }
      const now = Date.now();
      const granted = typeof answer.lease_duration === 'number' ? answer.lease_duration : 0;
      const final = granted < record.durationS || answer.renewable === false;
      const renewed: LeaseRecord = { ...record, expiresAt: now + granted * 1000, renewedAt: now, final };
      // A release that came while the renewal was on its way: its record is not brought back. (If one slips in between
      // this check and the write, the next renewal hears 'lease not found' from Vault and drops it.)
      if ((await this.#store.get(handle)) === undefined) return this.#forget(handle);
      await this.#store.put(renewed);
      if (final) {
        this.#logger.warn('dynamic secret lease reached its max TTL: Vault ends it then, and workers still using it need a new credential', {
          name: record.name, version: handle, endsAt: new Date(renewed.expiresAt).toISOString(),
        });
      } else {
        this.#logger.debug('dynamic secret lease renewed', { name: record.name, version: handle, ttlSeconds: granted });
      }
      this.#arm(renewed);
    } catch (error) {
      // Vault failures arrive coded (their messages name a path, never a lease id or a value); anything else is the store.
      const why = error instanceof WorkerManagerError ? { code: error.code, message: error.message } : { code: 'WM_ERR_INTERNAL', errno: (error as NodeJS.ErrnoException | null)?.code ?? null };
      const left = record.expiresAt - Date.now();
      this.#logger.warn('dynamic secret lease renewal failed; trying again while it lasts', { name: record.name, version: handle, ...why, expiresAt: new Date(record.expiresAt).toISOString() });
      if (left <= 0 || this.#closed) return this.#forget(handle);
      const timer = setTimeout(() => void this.#renew(handle), timerDelay(Math.min(RETRY_MS, left / 2), MIN_DELAY_MS));
      timer.unref();
      this.#timers.set(handle, timer);
    }
  }
}
