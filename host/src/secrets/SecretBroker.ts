import { WorkerManagerError, toWorkerManagerError, type SecretMount, type SecretRef, type SecretValue } from '@worker-manager/plugin-sdk';
import type { EventBus } from '../bus/EventBus.ts';
import { createEvent } from '../bus/createEvent.ts';
import type { Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { OperationObserver } from '../observability/OperationObserver.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { AuditSink } from '../security/audit/AuditSink.ts';
import { ConsumerTable, type SecretConsumer } from './ConsumerTable.ts';
import { LeaseHolders, type LeaseKey } from './LeaseHolders.ts';
import { SecretCache } from './SecretCache.ts';
import { secretNameGlob } from './secretNameGlob.ts';
import { assertDistinctTargets, secretMounts } from './secretMounts.ts';
import type { SecretsSettings } from './secretsSettings.ts';

export type { SecretConsumer } from './ConsumerTable.ts';

/** Tenant of secrets no rule claims, and of requests that name no tenant. */
export const DEFAULT_TENANT = 'default';

/** A request to resolve the secret refs of one worker. */
export interface ResolveRequest {
  workerId: string;
  /** Tenant the request acts for; tenant `default` when absent. */
  tenant?: string;
  /** Principal id behind the request (audit and denial events only). */
  owner?: string;
  refs: SecretRef[];
  correlationId?: string;
}

/** What the broker needs. */
export interface SecretBrokerDeps {
  registry: PluginRegistry;
  settings: SecretsSettings;
  stateDir: string;
  logger: Logger;
  audit?: AuditSink;
  bus: EventBus;
  subjects: Subjects;
  hostId: string;
  observer?: OperationObserver;
}

interface CompiledRule {
  tenant: string;
  credentials: string | undefined;
  matches: Array<(name: string) => boolean>;
}

/**
 * The only host component that sees secret values. It resolves the secret refs of one worker into mount instructions
 * (after checking, per ref and before anything is fetched, that the request's tenant owns the secret), keeps values
 * for a short TTL, and remembers which worker uses which secret (persisted, for rotation). Values issued under a lease
 * the plugin ends on request (capability `secret.lease`) are tracked per worker (LeaseHolders): once the last worker
 * holding one is forgotten, the plugin is told to release it. Values never leave it except as the `SecretMount`s it
 * returns; its errors, logs, events and audit records carry names and versions only.
 */
export class SecretBroker {
  readonly #d: SecretBrokerDeps;
  readonly #rules: CompiledRule[];
  readonly #cache: SecretCache;
  readonly #table: ConsumerTable;
  readonly #leases: LeaseHolders;
  #leaseListener: ((credentials: string, name: string, leaseTtlMs: number) => void) | undefined;
  #started: Promise<void> | undefined;

  constructor(deps: SecretBrokerDeps) {
    this.#d = deps;
    this.#rules = deps.settings.tenants.map((r) => ({ tenant: r.tenant, credentials: r.credentials, matches: r.names.map(secretNameGlob) }));
    this.#cache = new SecretCache(deps.settings.cacheTtlMs);
    this.#table = new ConsumerTable(deps.stateDir);
    this.#leases = new LeaseHolders({
      stateDir: deps.stateDir,
      logger: deps.logger,
      // Decided leases leave the cache at once, before the release is on its way: no worker can be handed one.
      onRelease: (lease) => this.#cache.invalidate(lease.credentials, lease.name),
      release: (lease) => this.#releaseLease(lease),
    });
  }

  /** Loads the persisted consumer table and checks `secrets.defaultCredentials`. Safe to call twice. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const name = this.#d.settings.defaultCredentials;
    if (name !== undefined && !this.#credentialInstances().includes(name)) {
      throw hostError('HOST_ERR_CONFIG_INVALID', `secrets.defaultCredentials names '${name}', which is not a configured credentials instance`, { details: { instance: name } });
    }
    await this.#table.load();
    await this.#leases.load();
    // A lease holder without recorded consumers never got its worker (a crash between resolving and recording).
    await this.#leases.retain(new Set(this.#table.all().map((c) => c.workerId)));
  }

  /** Credential instance a ref uses: ref.credentials, else secrets.defaultCredentials, else the only configured credentials instance. */
  credentialsFor(ref: Pick<SecretRef, 'credentials'>): string {
    if (ref.credentials !== undefined) return ref.credentials;
    if (this.#d.settings.defaultCredentials !== undefined) return this.#d.settings.defaultCredentials;
    const all = this.#credentialInstances();
    if (all.length === 1) return all[0] as string;
    throw new WorkerManagerError(
      'WM_ERR_CONFIGURATION',
      all.length === 0
        ? 'a secret ref needs a credentials instance, and none is configured'
        : `a secret ref names no credentials instance and ${all.length} are configured: name one, or set secrets.defaultCredentials`,
      { details: { credentialInstances: all } },
    );
  }

  /** Tenant that owns a secret (secrets.tenants rules, first match; unmatched secrets belong to tenant 'default'). */
  tenantOf(credentials: string, name: string): string {
    const rule = this.#rules.find((r) => (r.credentials === undefined || r.credentials === credentials) && r.matches.some((m) => m(name)));
    return rule?.tenant ?? DEFAULT_TENANT;
  }

  /** Throws WM_ERR_AUTHORIZATION (no value in message) when `tenant` may not read it. Request without tenant = tenant 'default'. */
  assertCanRead(tenant: string | undefined, credentials: string, name: string): void {
    const acting = tenant ?? DEFAULT_TENANT;
    const owner = this.tenantOf(credentials, name);
    if (owner !== acting) {
      throw new WorkerManagerError('WM_ERR_AUTHORIZATION', `tenant '${acting}' may not read secret '${name}' of credentials instance '${credentials}'`, {
        details: { tenant: acting, credentials, secret: name, reason: 'tenant' },
      });
    }
  }

  /**
   * Resolves refs for ONE worker: every ref's tenant check first (nothing is fetched when one fails), then getSecret
   * through the credentials proxy (TTL cache), `keys` selection, and the mount instructions for that worker only.
   */
  async resolve(req: ResolveRequest): Promise<SecretMount[]> {
    const started = performance.now();
    const tenant = req.tenant ?? DEFAULT_TENANT;
    const targets = req.refs.map((ref) => ({ ref, credentials: this.credentialsFor(ref) }));
    let done: (() => void) | undefined;
    try {
      for (const t of targets) {
        try {
          this.assertCanRead(req.tenant, t.credentials, t.ref.name);
        } catch (error) {
          await this.#denied(req, tenant, t.credentials, t.ref.name);
          throw error;
        }
      }
      done = this.#leases.begin(targets.map((t) => ({ credentials: t.credentials, name: t.ref.name })));
      // Every fetch is waited for, failed or not: a lease one of them issued must be known before the error leaves.
      const settled = await Promise.allSettled(targets.map((t) => this.#fetch(t.credentials, t.ref, req.correlationId)));
      const leases = settled.flatMap((r, i) => (r.status === 'fulfilled' ? this.#leaseOf((targets[i] as { credentials: string }).credentials, r.value) : []));
      if (leases.length > 0) await this.#leases.record(leases);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      const values = settled.map((r) => (r as PromiseFulfilledResult<SecretValue>).value);
      const mounts = targets.flatMap((t, i) => secretMounts(t.ref, (values[i] as SecretValue).version, (values[i] as SecretValue).value));
      assertDistinctTargets(mounts);
      const released = targets.map((t, i) => ({ credentials: t.credentials, name: t.ref.name, version: (values[i] as SecretValue).version }));
      // Recorded before the values leave the broker: a release that cannot be audited does not happen.
      await this.#d.audit?.record({
        kind: 'secret.release', principal: this.#principal(req, tenant), action: 'secret:read', resource: `Worker::${req.workerId}`, decision: 'allow', result: 'ok',
        ...(req.correlationId === undefined ? {} : { correlationId: req.correlationId }),
        details: { workerId: req.workerId, tenant, secrets: released },
      });
      if (leases.length > 0) await this.#leases.record(leases, req.workerId);
      this.#observe(req, tenant, started, undefined, targets[0]?.credentials);
      // A ref pinned to a version does not follow renewals (as it does not follow rotations).
      targets.forEach((t, i) => {
        const lease = (values[i] as SecretValue).leaseTtlMs;
        if (lease !== undefined && t.ref.version === undefined) this.#leaseListener?.(t.credentials, t.ref.name, lease);
      });
      return mounts;
    } catch (error) {
      this.#observe(req, tenant, started, error, targets[0]?.credentials);
      throw error;
    } finally {
      // Leases this resolution fetched but handed to no worker are released now (unless another worker holds them).
      done?.();
    }
  }

  /** Remembers (persisted) which secrets a worker uses, so rotation can reach it; replaces what it had. */
  async recordConsumers(workerId: string, instance: string, tenant: string | undefined, refs: SecretRef[]): Promise<void> {
    const consumers: SecretConsumer[] = refs.map((ref) => ({ workerId, instance, tenant: tenant ?? DEFAULT_TENANT, ref: { ...ref, credentials: this.credentialsFor(ref) } }));
    await this.#table.set(workerId, consumers);
  }

  /** Forgets a worker (terminated, or never created); the leases it was the last holder of are released. */
  async forgetConsumers(workerId: string): Promise<void> {
    await this.#table.set(workerId, []);
    await this.#leases.forget(workerId);
  }

  /** Every lease handed out and not yet released, with the workers holding it (names and versions only). */
  leases(): Array<LeaseKey & { workers: string[] }> {
    return this.#leases.all();
  }

  /** Resolves once the lease releases started so far have finished (released, or failed and kept for later). */
  leaseReleasesSettled(): Promise<void> {
    return this.#leases.settled();
  }

  /** Workers using a secret, with the ref each used. */
  consumersOf(credentials: string, name: string): SecretConsumer[] {
    return this.#table.all().filter((c) => c.ref.name === name && c.ref.credentials === credentials);
  }

  /** The secrets one worker uses. */
  consumersOfWorker(workerId: string): SecretConsumer[] {
    return this.#table.ofWorker(workerId);
  }

  /** Every recorded consumer (for pruning workers that no longer exist after a restart). */
  allConsumers(): SecretConsumer[] {
    return this.#table.all();
  }

  /** Tells `listener` of every value handed out with a lease; the rotation engine renews them (LeaseRenewals). */
  watchLeases(listener: (credentials: string, name: string, leaseTtlMs: number) => void): void {
    this.#leaseListener = listener;
  }

  /** Drops cached values of a secret (rotation calls it after promote/rollback). */
  invalidate(credentials: string, name: string): void {
    this.#cache.invalidate(credentials, name);
  }

  /** The lease a value was issued under, when its instance negotiated `secret.lease` (others are never released). */
  #leaseOf(credentials: string, value: SecretValue): LeaseKey[] {
    if (value.lease === undefined || this.#d.registry.capabilitiesOf(credentials)['secret.lease'] === undefined) return [];
    return [{ credentials, name: value.name, version: value.version }];
  }

  async #releaseLease(lease: LeaseKey): Promise<void> {
    let capable: boolean;
    try {
      capable = this.#d.registry.capabilitiesOf(lease.credentials)['secret.lease'] !== undefined;
    } catch {
      // The instance is no longer configured: nobody can release the lease; it ends at its TTL in the store.
      capable = false;
    }
    if (!capable) {
      this.#d.logger.warn({ credentials: lease.credentials, name: lease.name, version: lease.version }, 'secret lease dropped: its credentials instance no longer releases leases');
      return;
    }
    await this.#d.registry.credentials(lease.credentials).releaseLease({ name: lease.name, version: lease.version });
  }

  #fetch(credentials: string, ref: SecretRef, correlationId: string | undefined): Promise<SecretValue> {
    return this.#cache.get(credentials, ref.name, ref.version, async () => {
      const params = ref.version === undefined ? { name: ref.name } : { name: ref.name, version: ref.version };
      const value = await this.#d.registry.credentials(credentials).getSecret(params, correlationId === undefined ? {} : { correlationId });
      // A provider answering for another name would hand one secret's value out under another's tenant check.
      if (value.name !== ref.name) {
        throw new WorkerManagerError('WM_ERR_PROVIDER_SPECIFIC', `credentials instance '${credentials}' answered getSecret('${ref.name}') with another secret`, {
          details: { instance: credentials, secret: ref.name },
        });
      }
      return value;
    });
  }

  async #denied(req: ResolveRequest, tenant: string, credentials: string, name: string): Promise<void> {
    const principal = this.#principal(req, tenant);
    const event = createEvent(this.#d.subjects, this.#d.hostId, 'authDenied', { principal: principal.id, action: 'secret:read', resource: `Secret::${name}`, credentials, tenant, workerId: req.workerId, reason: 'tenant' }, {
      subject: req.workerId, correlationId: req.correlationId, tenant,
    });
    this.#d.bus.publish(event).catch((error: unknown) => this.#d.logger.error({ err: toWorkerManagerError(error).code, subject: event.busSubject }, 'event publish failed'));
    try {
      await this.#d.audit?.record({
        kind: 'secret.release', principal, action: 'secret:read', resource: `Secret::${name}`, decision: 'deny', result: 'error',
        ...(req.correlationId === undefined ? {} : { correlationId: req.correlationId }),
        details: { workerId: req.workerId, tenant, credentials, reason: 'tenant', code: 'WM_ERR_AUTHORIZATION' },
      });
    } catch (error) {
      // The denial stands whatever the audit sink does; its failure is reported, not swallowed.
      this.#d.logger.error({ err: toWorkerManagerError(error).code, workerId: req.workerId }, 'audit of a secret denial failed');
    }
  }

  #principal(req: ResolveRequest, tenant: string): { id: string; kind: 'user' | 'service'; tenant: string; source: 'host' } {
    return { id: req.owner ?? `host:${this.#d.hostId}`, kind: 'service', tenant, source: 'host' };
  }

  #observe(req: ResolveRequest, tenant: string, started: number, error: unknown, credentials: string | undefined): void {
    if (this.#d.observer === undefined) return;
    const failure = error === undefined ? undefined : toWorkerManagerError(error);
    try {
      this.#d.observer({
        op: 'resolveSecrets', workerId: req.workerId, tenant, result: failure === undefined ? 'ok' : 'error', latencyMs: performance.now() - started,
        ...(credentials === undefined ? {} : { instance: credentials }),
        ...(req.correlationId === undefined ? {} : { correlationId: req.correlationId }),
        ...(failure === undefined ? {} : { category: failure.category, code: failure.code }),
      });
    } catch {
      // An observer must not change the outcome of the operation it watches.
    }
  }

  #credentialInstances(): string[] {
    return this.#d.registry.instances().filter((i) => i.plugin?.pkg?.metadata.kind === 'credentials').map((i) => i.name);
  }
}
