import type { CedarValueJson, EntityJson, TypeAndId } from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzRequest } from './Authorizer.ts';

/** Namespace of every entity type and action in config/policies/schema.cedarschema. */
export const CEDAR_NAMESPACE = 'WorkerManager';

/** An authorization request in Cedar's terms: what both adapters (embedded and AVP) send. */
export interface CedarRequest {
  principal: TypeAndId;
  action: TypeAndId;
  resource: TypeAndId;
  context: Record<string, CedarValueJson>;
  /** The principal, its roles and the resource, with the attributes policies read. */
  entities: EntityJson[];
}

/** A request that cannot be put in Cedar's terms (a malformed context); the adapters turn it into a deny. */
export class AuthzMappingError extends Error {
  override readonly name = 'AuthzMappingError';
}

const type = (name: string): string => `${CEDAR_NAMESPACE}::${name}`;

// Cedar decimals hold at most 4 fractional digits within +/-922337203685477.5807.
const DECIMAL_LIMIT = 9e14;

function decimal(name: string, value: number): CedarValueJson {
  if (!Number.isFinite(value) || Math.abs(value) >= DECIMAL_LIMIT) throw new AuthzMappingError(`context.${name} ${value} is not a finite cost below ${DECIMAL_LIMIT}`);
  return { __extn: { fn: 'decimal', arg: value.toFixed(4) } };
}

function long(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new AuthzMappingError(`context.${name} ${value} is not an integer from ${min} to ${max}`);
  return value;
}

/** Copies the defined string attributes only: an absent attribute must stay absent for `has` to mean something. */
function strings(source: Record<string, unknown>, keys: readonly string[]): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  for (const key of keys) {
    const value = source[key];
    if (typeof value === 'string') out[key] = value;
  }
  return out;
}

const RESOURCE_ATTRIBUTES: Record<string, readonly string[]> = {
  Worker: ['provider', 'tenant', 'owner', 'namespace'],
  Secret: ['tenant', 'credentials'],
};

/**
 * The one mapping from an {@link AuthzRequest} to Cedar principal, action, resource, context and entities, shared by
 * the embedded engine and AWS Verified Permissions so both decide on the same facts. A `user` is a `User`, a `service`
 * a `ServiceAccount`; its roles are parent `Role` entities (`principal in Role::"security_admin"`); its id is also the
 * `subject` attribute so policies can compare it with a worker's `owner`. Throws {@link AuthzMappingError} for a
 * context outside the schema's types (a fractional hour, a cost that is not a finite number).
 */
export function toCedarRequest(request: AuthzRequest): CedarRequest {
  const { principal, action, resource, context } = request;
  const principalUid = { type: type(principal.kind === 'service' ? 'ServiceAccount' : 'User'), id: principal.id };
  const roles = [...new Set(principal.roles)].map((role) => ({ type: type('Role'), id: role }));
  const principalEntity: EntityJson = {
    uid: principalUid,
    attrs: {
      subject: principal.id,
      source: principal.source,
      scopes: [...new Set(principal.scopes)],
      ...strings(principal as unknown as Record<string, unknown>, ['tenant', 'clientId']),
    },
    parents: roles,
  };
  const resourceUid = { type: type(resource.type), id: resource.id };
  const resourceEntity: EntityJson = {
    uid: resourceUid,
    attrs: strings(resource as unknown as Record<string, unknown>, RESOURCE_ATTRIBUTES[resource.type] ?? []),
    parents: [],
  };
  const cedarContext: Record<string, CedarValueJson> = { hourOfDay: long('hourOfDay', context.hourOfDay, 0, 23) };
  if (context.tenant !== undefined) cedarContext['tenant'] = context.tenant;
  if (context.costEstimate !== undefined) cedarContext['costEstimate'] = decimal('costEstimate', context.costEstimate);
  if (context.requested !== undefined) {
    const requested: Record<string, CedarValueJson> = {};
    for (const key of ['cpuMillicores', 'memoryMiB', 'gpu'] as const) {
      const value = context.requested[key];
      if (value !== undefined) requested[key] = long(`requested.${key}`, value, 0, Number.MAX_SAFE_INTEGER);
    }
    cedarContext['requested'] = requested;
  }
  // Principal and resource types never coincide (users and service accounts are not resources), so no uid repeats.
  const entities = [principalEntity, ...roles.map((uid): EntityJson => ({ uid, attrs: {}, parents: [] })), resourceEntity];
  return { principal: principalUid, action: { type: type('Action'), id: action }, resource: resourceUid, context: cedarContext, entities };
}
