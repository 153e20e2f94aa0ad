import { randomUUID } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { hostError } from '../../../errors.ts';
import type { Logger } from '../../../observability/logger.ts';
import type { AuthzDecision, Authorizer, AuthzRequest } from '../Authorizer.ts';
import { toCedarRequest } from '../cedarRequest.ts';
import { denyWithError, failClosed } from '../failClosed.ts';
import { loadCedarPolicies } from '../loadCedarPolicies.ts';

/**
 * The embedded Cedar engine. `start()` reads and validates the policy set (refusing to start on one that does not
 * validate) and pre-parses policies and schema once into the engine's per-thread cache; each decision is then a
 * `statefulIsAuthorized` call with request validation on, so a request outside the schema is a deny, not a guess.
 */
export class CedarAuthorizer implements Authorizer {
  readonly adapter = 'cedar';
  readonly #options: { policiesDir: string; schemaFile: string };
  readonly #log: Logger | undefined;
  // Per instance: two authorizers in one thread (tests, a reload) must not share the engine's cache slot.
  readonly #cacheId = `wm-${randomUUID()}`;
  #starting: Promise<void> | undefined;
  #ready = false;

  constructor(options: { policiesDir: string; schemaFile: string }, deps: { logger?: Logger } = {}) {
    this.#options = options;
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
    let answer;
    try {
      answer = cedar.statefulIsAuthorized({ ...call, preparsedPolicySetId: this.#cacheId, preparsedSchemaName: this.#cacheId, validateRequest: true });
    } catch (error) {
      return denyWithError(`cedar engine failed: ${(error as Error).message}`);
    }
    if (answer.type === 'failure') return denyWithError(`request does not match the schema: ${answer.errors.map((e) => e.message).join('; ')}`);
    const { decision, diagnostics } = answer.response;
    return failClosed({
      allow: decision === 'allow',
      determining: diagnostics.reason,
      errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })),
    });
  }
}
