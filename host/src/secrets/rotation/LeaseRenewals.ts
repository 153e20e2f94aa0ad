import { randomUUID } from 'node:crypto';
import { toWorkerManagerError } from '@worker-manager/plugin-sdk';
import type { Logger } from '../../observability/logger.ts';
import type { LeaseRenewal } from './RotationDistributor.ts';
import type { RotationBroker } from './rotationPorts.ts';

/** What a renewal does: moves the secret's consumers onto a fresh value, as a rotation's distribution does. */
export type Redistribute = (target: LeaseRenewal) => Promise<{ workers: string[] }>;

/** Never sooner than this after a lease was seen: a store answering with tiny leases must not spin the host. */
const MIN_DELAY_MS = 1_000;
/** After a renewal failed, the next try; the lease may still have time left. */
const RETRY_MS = 5_000;

/**
 * Keeps leased secrets fresh in the workers that use them. A store may give a value a lease (`leaseTtlMs`: a Keycloak
 * access token until its expiry, a Vault dynamic credential until its TTL ends); the value in a worker's file would
 * then expire while the worker runs. At two thirds of the shortest lease seen for a secret, its cached value is
 * dropped and its consumers get a fresh one the way they follow a rotation (`onRotation`: files replaced in place, a
 * signal, or a restart); resolving the fresh value reports its lease, which arms the next renewal. A secret nobody
 * uses any more is not renewed. Not durable: after a host restart the next resolve of the secret arms it again.
 */
export class LeaseRenewals {
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #broker: Pick<RotationBroker, 'consumersOf' | 'invalidate'>;
  readonly #redistribute: Redistribute;
  readonly #log: Logger;
  readonly #now: () => number;
  #stopped = false;

  constructor(deps: { broker: Pick<RotationBroker, 'consumersOf' | 'invalidate'>; redistribute: Redistribute; logger: Logger; now?: () => number }) {
    this.#broker = deps.broker;
    this.#redistribute = deps.redistribute;
    this.#log = deps.logger;
    this.#now = deps.now ?? Date.now;
  }

  /** A value of `credentials`/`name` was handed out with a lease of `leaseTtlMs`: renew before it ends. */
  leased(credentials: string, name: string, leaseTtlMs: number): void {
    if (this.#stopped) return;
    this.#arm(credentials, name, Math.max(MIN_DELAY_MS, Math.floor((leaseTtlMs * 2) / 3)));
  }

  stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #arm(credentials: string, name: string, delayMs: number): void {
    const key = JSON.stringify([credentials, name]);
    const at = this.#now() + delayMs;
    const armed = this.#timers.get(key);
    // The earliest renewal wins: a shorter lease handed out later must not wait for a longer one's.
    if (armed !== undefined && armed.at <= at) return;
    if (armed !== undefined) clearTimeout(armed.timer);
    const timer = setTimeout(() => void this.#renew(key, credentials, name), delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  async #renew(key: string, credentials: string, name: string): Promise<void> {
    this.#timers.delete(key);
    if (this.#stopped || this.#broker.consumersOf(credentials, name).length === 0) return;
    this.#broker.invalidate(credentials, name);
    const id = `lease-${randomUUID()}`;
    try {
      const { workers } = await this.#redistribute({ id, credentials, name });
      this.#log.info({ renewalId: id, credentials, name, workers: workers.length }, 'leased secret renewed in the workers that use it');
    } catch (error) {
      const failure = toWorkerManagerError(error);
      this.#log.warn({ renewalId: id, credentials, name, code: failure.code, err: failure.message }, 'leased secret could not be renewed; trying again');
      if (!this.#stopped) this.#arm(credentials, name, RETRY_MS);
    }
  }
}
