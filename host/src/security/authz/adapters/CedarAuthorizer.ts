import { randomUUID } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { hostError } from '../../../errors.ts';
import type { Logger } from '../../../observability/logger.ts';
import type { AuthzDecision, Authorizer, AuthzRequest } from '../Authorizer.ts';
import { toCedarRequest } from '../cedarRequest.ts';
import { denyWithError, failClosed } from '../failClosed.ts';
import { loadCedarPolicies } from '../loadCedarPolicies.ts';

/** Decisions remembered per authorizer by default; an entry is a request of about a kilobyte, so about 1 MiB. */
export const DECISION_CACHE_SIZE = 1024;

/**
 * The embedded Cedar engine. `start()` reads and validates the policy set (refusing to start on one that does not
 * validate) and pre-parses policies and schema once into the engine's per-thread cache; each decision is then a
 * `statefulIsAuthorized` call with request validation on, so a request outside the schema is a deny, not a guess.
 *
 * Decisions are remembered (least recently used, {@link DECISION_CACHE_SIZE} of them unless `decisionCacheSize` says
 * otherwise; 0 turns it off) by the exact request handed to the engine: principal, action, resource, context and
 * every entity with its attributes. Cedar evaluation is a pure function of that request and the policy set, and an
 * authorizer's policy set never changes after start, so a hit is the decision the engine would make, not an
 * approximation; a changed attribute, role or hour is another key.
 * An orchestrator repeats the same few requests (one service account creating workers of one shape), and a call into
 * the engine costs a few tenths of a millisecond where a hit costs a few microseconds. Decisions with evaluation
 * errors are not kept, so each one is logged.
 */
export class CedarAuthorizer implements Authorizer {
  readonly adapter = 'cedar';
  readonly #options: { policiesDir: string; schemaFile: string; decisionCacheSize?: number };
  readonly #log: Logger | undefined;
  // Per instance: two authorizers in one thread (tests, a reload) must not share the engine's cache slot.
  readonly #cacheId = `wm-${randomUUID()}`;
  #starting: Promise<void> | undefined;
  #ready = false;
  readonly #decisions = new Map<string, AuthzDecision>();
  readonly #cacheSize: number;

  constructor(options: { policiesDir: string; schemaFile: string; decisionCacheSize?: number }, deps: { logger?: Logger } = {}) {
    this.#options = options;
    this.#cacheSize = options.decisionCacheSize ?? DECISION_CACHE_SIZE;
    this.#log = deps.logger?.child({ component: 'authz', adapter: 'cedar' });
  }

  start(): Promise<void> {
    this.#starting ??= this.#start().catch((error: unknown) => {
      this.#starting = undefined;
      throw error;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const loaded = await loadCedarPolicies(this.#options);
    for (const warning of loaded.warnings) this.#log?.warn({ warning }, 'policy validation warning');
    const schema = cedar.preparseSchema(this.#cacheId, loaded.schema);
    const policies = cedar.preparsePolicySet(this.#cacheId, { staticPolicies: loaded.policies });
    const failed = schema.type === 'failure' ? schema.errors[0] : policies.type === 'failure' ? policies.errors[0] : undefined;
    if (failed !== undefined) throw hostError('HOST_ERR_AUTHZ_POLICY_INVALID', `the Cedar engine refused the policy set: ${failed.message}`, { details: { dir: this.#options.policiesDir } });
    this.#ready = true;
    this.#log?.info({ dir: this.#options.policiesDir, policies: Object.keys(loaded.policies) }, 'cedar policies loaded');
  }

  async stop(): Promise<void> {
    this.#ready = false;
    this.#starting = undefined;
    this.#decisions.clear();
  }

  async authorize(request: AuthzRequest): Promise<AuthzDecision> {
    const decision = this.#decide(request);
    if (decision.errors.length > 0) {
      this.#log?.warn({ action: request.action, resource: `${request.resource.type}::${request.resource.id}`, principal: request.principal.id, errors: decision.errors }, 'authorization denied: evaluation failed');
    }
    return decision;
  }

  #decide(request: AuthzRequest): AuthzDecision {
    if (!this.#ready) return denyWithError('the cedar authorizer is not started');
    let call;
    try {
      call = toCedarRequest(request);
    } catch (error) {
      return denyWithError(`request cannot be evaluated: ${(error as Error).message}`);
    }
    const key = this.#cacheSize > 0 ? JSON.stringify(call) : undefined;
    const known = key === undefined ? undefined : this.#decisions.get(key);
    if (key !== undefined && known !== undefined) {
      // Most recently used goes last, so the first key is the one to evict.
      this.#decisions.delete(key);
      this.#decisions.set(key, known);
      return known;
    }
    let answer;
    try {
      answer = cedar.statefulIsAuthorized({ ...call, preparsedPolicySetId: this.#cacheId, preparsedSchemaName: this.#cacheId, validateRequest: true });
    } catch (error) {
      return denyWithError(`cedar engine failed: ${(error as Error).message}`);
    }
    if (answer.type === 'failure') return denyWithError(`request does not match the schema: ${answer.errors.map((e) => e.message).join('; ')}`);
    const { decision, diagnostics } = answer.response;
    const made = failClosed({
      allow: decision === 'allow',
      determining: diagnostics.reason,
      errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })),
    });
    if (key !== undefined && made.errors.length === 0) {
      // Shared by every later hit: frozen, so no caller can change another's decision.
      Object.freeze(made.policies);
      this.#decisions.set(key, Object.freeze(made));
      if (this.#decisions.size > this.#cacheSize) this.#decisions.delete(this.#decisions.keys().next().value as string);
    }
    return made;
  }
}
