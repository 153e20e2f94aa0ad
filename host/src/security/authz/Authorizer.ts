import type { Principal } from '../Principal.ts';

/** Actions of the entity model (seed 003 table 8). */
export const ACTIONS = [
  'worker:create', 'worker:read', 'worker:terminate', 'worker:logs', 'worker:exec', 'worker:portForward', 'worker:pause',
  'worker:resume', 'worker:restart', 'secret:read', 'secret:rotate', 'secret:rollback', 'plugin:read', 'event:read',
] as const;
/** An action a principal may be allowed. */
export type Action = (typeof ACTIONS)[number];

/** The resource an action targets, with the attributes policies read. */
export type AuthzResource =
  | { type: 'Worker'; id: string; provider?: string; tenant?: string; owner?: string; namespace?: string }
  | { type: 'Secret'; id: string; credentials?: string; tenant?: string }
  | { type: 'Provider'; id: string }
  | { type: 'Plugin'; id: string }
  | { type: 'Host'; id: string };

/** Facts about the request itself (seed 000 table 12: hours window, cost limit, tenant match). */
export interface AuthzContext {
  /** Tenant the request acts for. */
  tenant?: string;
  /** Hour of day (0-23, UTC) when the request was made. */
  hourOfDay: number;
  /** Estimated cost of what is requested, in cost units (create only). */
  costEstimate?: number;
  /** Requested resources (create only). */
  requested?: { cpuMillicores?: number; memoryMiB?: number; gpu?: number };
  correlationId?: string;
}

/** One authorization question. */
export interface AuthzRequest {
  principal: Principal;
  action: Action;
  resource: AuthzResource;
  context: AuthzContext;
}

/** The answer. `deny` also when evaluation failed (fail closed); `errors` then says why. */
export interface AuthzDecision {
  decision: 'allow' | 'deny';
  /** Ids of the policies that determined the decision. */
  policies: string[];
  /** Evaluation errors (a policy that failed, a missing attribute, an unreachable AVP). */
  errors: string[];
}

/** The authorization port; adapters: embedded Cedar, AWS Verified Permissions. */
export interface Authorizer {
  readonly adapter: string;
  start(): Promise<void>;
  authorize(request: AuthzRequest): Promise<AuthzDecision>;
  stop(): Promise<void>;
}
