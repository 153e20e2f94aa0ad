import type { AuthzDecision } from './Authorizer.ts';

/**
 * The decision an adapter returns for an engine's answer. Cedar skips a policy that errors, so an erroring `forbid`
 * can leave an `allow` standing: any error at all turns the answer into a deny, naming the policies that failed.
 */
export function failClosed(answer: { allow: boolean; determining: string[]; errors: Array<{ policyId?: string; message: string }> }): AuthzDecision {
  if (answer.errors.length === 0) return { decision: answer.allow ? 'allow' : 'deny', policies: answer.determining, errors: [] };
  const failed = [...new Set(answer.errors.map((e) => e.policyId).filter((id): id is string => id !== undefined))];
  return {
    decision: 'deny',
    policies: failed,
    errors: answer.errors.map((e) => (e.policyId === undefined ? e.message : `policy ${e.policyId}: ${e.message}`)),
  };
}

/** A deny for a request that could not be evaluated at all. */
export function denyWithError(message: string): AuthzDecision {
  return { decision: 'deny', policies: [], errors: [message] };
}
