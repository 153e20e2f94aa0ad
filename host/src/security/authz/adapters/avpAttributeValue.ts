import type { AttributeValue, EntityItem, IsAuthorizedInput } from '@aws-sdk/client-verifiedpermissions';
import type { CedarValueJson, EntityJson } from '@cedar-policy/cedar-wasm/nodejs';
import type { CedarRequest } from '../cedarRequest.ts';

const EXTENSIONS = ['decimal', 'ipaddr', 'datetime', 'duration'] as const;
// Cedar's extension constructor names differ from AVP's member names only for ip addresses.
const CEDAR_FN: Record<(typeof EXTENSIONS)[number], string> = { decimal: 'decimal', ipaddr: 'ip', datetime: 'datetime', duration: 'duration' };

/** A Cedar JSON value as a Verified Permissions AttributeValue (the AVP JSON 1.0 shape: exactly one member). */
export function cedarToAttributeValue(value: CedarValueJson): AttributeValue {
  if (typeof value === 'boolean') return { boolean: value };
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`${value} is not a Cedar long`);
    return { long: value };
  }
  if (typeof value === 'string') return { string: value };
  if (Array.isArray(value)) return { set: value.map(cedarToAttributeValue) };
  if (value === null) throw new Error('Cedar has no null');
  if ('__entity' in value) {
    const e = value['__entity'] as { type: string; id: string };
    return { entityIdentifier: { entityType: e.type, entityId: e.id } };
  }
  if ('__extn' in value) {
    const x = value['__extn'] as { fn: string; arg?: CedarValueJson };
    const member = (Object.keys(CEDAR_FN) as Array<keyof typeof CEDAR_FN>).find((k) => CEDAR_FN[k] === x.fn);
    if (member === undefined || typeof x.arg !== 'string') throw new Error(`extension ${x.fn} has no AttributeValue member`);
    return { [member]: x.arg } as unknown as AttributeValue;
  }
  const record: Record<string, AttributeValue> = {};
  for (const [k, v] of Object.entries(value)) record[k] = cedarToAttributeValue(v);
  return { record };
}

/** An AVP AttributeValue as a Cedar JSON value; throws on a value that has not exactly one known member. */
export function attributeValueToCedar(value: unknown): CedarValueJson {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('an AttributeValue must be an object');
  const keys = Object.keys(value);
  if (keys.length !== 1) throw new Error(`an AttributeValue must have exactly one member, got ${keys.length}`);
  const key = keys[0] as string;
  const inner = (value as Record<string, unknown>)[key];
  switch (key) {
    case 'boolean':
      if (typeof inner !== 'boolean') break;
      return inner;
    case 'long':
      if (typeof inner !== 'number' || !Number.isSafeInteger(inner)) break;
      return inner;
    case 'string':
      if (typeof inner !== 'string') break;
      return inner;
    case 'entityIdentifier': {
      const e = inner as { entityType?: unknown; entityId?: unknown } | null;
      if (typeof e?.entityType !== 'string' || typeof e.entityId !== 'string') break;
      return { __entity: { type: e.entityType, id: e.entityId } };
    }
    case 'set':
      if (!Array.isArray(inner)) break;
      return inner.map(attributeValueToCedar);
    case 'record': {
      if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) break;
      const out: Record<string, CedarValueJson> = {};
      for (const [k, v] of Object.entries(inner)) out[k] = attributeValueToCedar(v);
      return out;
    }
    default:
      if ((EXTENSIONS as readonly string[]).includes(key) && typeof inner === 'string') return { __extn: { fn: CEDAR_FN[key as keyof typeof CEDAR_FN], arg: inner } };
  }
  throw new Error(`AttributeValue member ${key} has the wrong type`);
}

/** The IsAuthorized input for a Cedar request: same principal, action, resource, context and entities. */
export function toIsAuthorizedInput(request: CedarRequest, policyStoreId: string): IsAuthorizedInput {
  const attributes = (attrs: Record<string, CedarValueJson>): Record<string, AttributeValue> =>
    Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, cedarToAttributeValue(v)]));
  const identifier = (uid: EntityJson['uid']): { entityType: string; entityId: string } => {
    const plain = '__entity' in uid ? uid.__entity : uid;
    return { entityType: plain.type, entityId: plain.id };
  };
  const entityList: EntityItem[] = request.entities.map((e) => ({ identifier: identifier(e.uid), attributes: attributes(e.attrs), parents: e.parents.map(identifier) }));
  return {
    policyStoreId,
    principal: identifier(request.principal),
    action: { actionType: request.action.type, actionId: request.action.id },
    resource: identifier(request.resource),
    context: { contextMap: attributes(request.context) },
    entities: { entityList },
  };
}
