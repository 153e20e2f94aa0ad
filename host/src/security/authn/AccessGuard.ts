import { WorkerManagerError, type ResourceQuota } from '@worker-manager/plugin-sdk';
import type { Logger } from '../../observability/logger.ts';
import type { AuditSink } from '../audit/AuditSink.ts';
import type { Action, AuthzContext, AuthzDecision, Authorizer, AuthzResource } from '../authz/Authorizer.ts';
import type { Principal } from '../Principal.ts';
import type { Authenticator } from './Authenticator.ts';

import { OWNER_LABEL, TENANT_LABEL } from '../../workers/workerLabels.ts';

export { OWNER_LABEL, TENANT_LABEL };

/** What the guard needs to know about an existing worker to authorize an action on it. */
export interface WorkerFacts {
  provider?: string;
  labels: Record<string, string>;
}
/** Looks a worker up by id; undefined when no provider has it. */
export type WorkerLookup = (workerId: string) => Promise<WorkerFacts | undefined>;

/** Who owns a secret (the SecretBroker's tenant rules), so tenant policies can match secret actions. */
export interface SecretOwnership {
  credentialsFor(ref: { credentials?: string }): string;
  tenantOf(credentials: string, name: string): string;
}

/** One call to guard: who (credentials or an already known principal), what, on what, with what. */
export interface AccessRequest {
  /** `Authorization` header value (`Bearer <token>`); ignored when `principal` is given. */
  authorization?: string | undefined;
  /** A principal established earlier (the API hook authenticates before the body is read). */
  principal?: Principal;
  action: Action;
  resource: AuthzResource;
  /** Resources a create asks for: the context gets them and their cost estimate. */
  requested?: ResourceQuota | undefined;
  correlationId?: string | undefined;
  /** Where the request came in (`api`, `bus`), for the audit record. */
  channel: string;
  /**
   * For a read that changes nothing: an allowed request is granted as soon as it is decided, and `grant.audited`
   * settles once its audit record is written to the log (`until: 'written'`: it survives the host dying; its fsync
   * follows within the log's sync lag). The caller must hold the answer until then (and answer the audit's error
   * instead if it fails), so nothing is learnt without an audit record, while the read runs during the write instead
   * of queueing behind it. A denial is always audited, durably, before it is thrown.
   */
  deferAudit?: boolean;
}

/** What an allowed request established. */
export interface AccessGrant {
  principal: Principal;
  decision: AuthzDecision;
  /** With `deferAudit`: settles when the audit record is written; rejects with the audit's error. */
  audited?: Promise<void>;
}

/**
 * Cost units of a resource request, what the hours/cost policies of seed 000 table 12 compare (`cost_limit <= $10`):
 * one unit per CPU core, one per GiB of memory, ten per GPU. Absent amounts cost nothing.
 */
export function estimateCost(resources: ResourceQuota | undefined): number {
  if (resources === undefined) return 0;
  const units = (resources.cpuMillicores ?? 0) / 1000 + (resources.memoryMiB ?? 0) / 1024 + (resources.gpu ?? 0) * 10;
  return Math.round(units * 1000) / 1000;
}

/** `Type::id`, how audit records name a resource. */
export function resourceName(resource: AuthzResource): string {
  return `${resource.type}::${resource.id}`;
}

/**
 * The one path every call into the host takes, over the API and over the bus: authenticate, authorize (fail closed:
 * an authorizer that throws is a deny), and audit the decision, allow or deny. Throws WM_ERR_AUTHENTICATION (401) or
 * WM_ERR_AUTHORIZATION (403, `details.reason` `denied` or `evaluation_error`). An audit record that cannot be written
 * fails the request: nothing runs unaudited.
 */
export class AccessGuard {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly #audit: AuditSink | undefined;
  readonly #lookup: WorkerLookup | undefined;
  readonly #secrets: SecretOwnership | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => Date;

  constructor(deps: { authenticator: Authenticator; authorizer: Authorizer; audit?: AuditSink; workers?: WorkerLookup; secrets?: SecretOwnership; logger?: Logger; now?: () => Date }) {
    this.authenticator = deps.authenticator;
    this.authorizer = deps.authorizer;
    this.#audit = deps.audit;
    this.#lookup = deps.workers;
    this.#secrets = deps.secrets;
    this.#log = deps.logger?.child({ component: 'access' });
    this.#now = deps.now ?? (() => new Date());
  }

  /** Authenticates only (the API does it before reading the body). */
  async authenticate(authorization: string | undefined, meta: { correlationId?: string | undefined; channel: string }): Promise<Principal> {
    try {
      return await this.authenticator.authenticate(authorization);
    } catch (error) {
      const wm = error instanceof WorkerManagerError ? error : undefined;
      // The reason and code only: never the header, which holds the token.
      this.#log?.info({ correlationId: meta.correlationId, channel: meta.channel, code: wm?.code, reason: wm?.details?.['reason'] }, 'authentication failed');
      throw error;
    }
  }

  /** Authenticates when no principal is given, then authorizes and audits. */
  async check(request: AccessRequest): Promise<AccessGrant> {
    const principal = request.principal ?? (await this.authenticate(request.authorization, request));
    const resource = await this.#withOwnership(request.action, request.resource);
    const context: AuthzContext = {
      hourOfDay: this.#now().getUTCHours(),
      ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }),
      ...(request.requested === undefined ? {} : { requested: pickRequested(request.requested), costEstimate: estimateCost(request.requested) }),
      ...(request.correlationId === undefined ? {} : { correlationId: request.correlationId }),
    };
    let decision: AuthzDecision;
    try {
      decision = await this.authorizer.authorize({ principal, action: request.action, resource, context });
    } catch (error) {
      decision = { decision: 'deny', policies: [], errors: [`authorizer ${this.authorizer.adapter} failed: ${(error as Error).message}`] };
    }
    if (decision.errors.length > 0) {
      this.#log?.warn({ correlationId: request.correlationId, action: request.action, resource: resourceName(resource), principal: principal.id, errors: decision.errors }, 'authorization evaluated with errors');
    }
    const audited = this.#audit?.record({
      kind: 'authz.decision',
      principal: { id: principal.id, kind: principal.kind, source: principal.source, ...(principal.tenant === undefined ? {} : { tenant: principal.tenant }) },
      action: request.action,
      resource: resourceName(resource),
      decision: decision.decision,
      policies: decision.policies,
      ...(request.correlationId === undefined ? {} : { correlationId: request.correlationId }),
      details: { channel: request.channel, authorizer: this.authorizer.adapter, ...(decision.errors.length > 0 ? { errors: decision.errors } : {}) },
    }, { until: decision.decision === 'allow' && request.deferAudit === true ? 'written' : 'durable' });
    if (decision.decision !== 'allow' || request.deferAudit !== true) await audited;
    else if (audited !== undefined) {
      // The caller awaits it before answering; this handler only keeps a failure from counting as unhandled meanwhile.
      audited.catch(() => undefined);
      return { principal, decision, audited };
    }
    if (decision.decision !== 'allow') {
      throw new WorkerManagerError('WM_ERR_AUTHORIZATION', `${principal.id} may not ${request.action} ${resourceName(resource)}`, {
        details: { reason: decision.errors.length > 0 ? 'evaluation_error' : 'denied', action: request.action, resource: resourceName(resource), policies: decision.policies },
      });
    }
    return { principal, decision };
  }

  /**
   * A worker resource named by id gets the provider, tenant and owner its labels record, and a secret the tenant the
   * broker's rules give it, unless the caller set them: policies compare these with the principal.
   */
  async #withOwnership(action: Action, resource: AuthzResource): Promise<AuthzResource> {
    if (resource.type === 'Secret') return this.#withSecretOwner(resource);
    if (resource.type !== 'Worker' || action === 'worker:create' || resource.id === '*' || this.#lookup === undefined) return resource;
    if (resource.tenant !== undefined && resource.owner !== undefined) return resource;
    const facts = await this.#lookup(resource.id).catch(() => undefined);
    if (facts === undefined) return resource;
    const tenant = resource.tenant ?? facts.labels[TENANT_LABEL];
    const owner = resource.owner ?? facts.labels[OWNER_LABEL];
    const provider = resource.provider ?? facts.provider;
    return { ...resource, ...(tenant === undefined ? {} : { tenant }), ...(owner === undefined ? {} : { owner }), ...(provider === undefined ? {} : { provider }) };
  }

  #withSecretOwner(resource: Extract<AuthzResource, { type: 'Secret' }>): AuthzResource {
    if (resource.tenant !== undefined || this.#secrets === undefined) return resource;
    try {
      const credentials = resource.credentials ?? this.#secrets.credentialsFor({});
      return { ...resource, credentials, tenant: this.#secrets.tenantOf(credentials, resource.id) };
    } catch {
      // No credential instance to ask: the resource stays without a tenant, which tenant policies never match.
      return resource;
    }
  }
}

function pickRequested(q: ResourceQuota): NonNullable<AuthzContext['requested']> {
  return {
    ...(q.cpuMillicores === undefined ? {} : { cpuMillicores: q.cpuMillicores }),
    ...(q.memoryMiB === undefined ? {} : { memoryMiB: q.memoryMiB }),
    ...(q.gpu === undefined ? {} : { gpu: q.gpu }),
  };
}

/** A lookup over WorkerService.describeWorker: answered from the service's own table, one provider call on a miss. */
export function workerLookupFrom(workers: { describeWorker(workerId: string): Promise<{ instance: string; labels: Record<string, string> } | undefined> }): WorkerLookup {
  return async (workerId) => {
    const found = await workers.describeWorker(workerId);
    return found === undefined ? undefined : { provider: found.instance, labels: found.labels };
  };
}
