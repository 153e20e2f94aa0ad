import Type, { type Static } from 'typebox';
import { MAX_LIST_ITEMS, MAX_NAME_LENGTH } from './limits.ts';

const Services = Type.Array(Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH }), { maxItems: MAX_LIST_ITEMS });

/** Network access policy of a worker: AllowServices, BlockServices, AllowIpRange, RequireTunnel. */
export const AccessPolicy = Type.Union([
  Type.Object({ type: Type.Literal('AllowServices'), services: Services }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('BlockServices'), services: Services }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('AllowIpRange'), cidr: Type.String({ pattern: '^[0-9a-fA-F:.]{2,45}/[0-9]{1,3}$' }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('RequireTunnel') }, { additionalProperties: false }),
]);
/** One access policy. */
export type AccessPolicy = Static<typeof AccessPolicy>;

/** Isolation level: Default (shared network), Strict (own network, no egress), Complete (no network at all). */
export const IsolationLevel = Type.Union([Type.Literal('Default'), Type.Literal('Strict'), Type.Literal('Complete')]);
/** Isolation level. */
export type IsolationLevel = Static<typeof IsolationLevel>;

/** What the worker needs from the network. */
export const NetworkRequirements = Type.Object(
  {
    type: Type.Union([Type.Literal('Private'), Type.Literal('Public'), Type.Literal('Hybrid'), Type.Literal('Isolated')]),
    accessPolicies: Type.Optional(Type.Array(AccessPolicy, { maxItems: MAX_LIST_ITEMS })),
    isolation: Type.Optional(IsolationLevel),
  },
  { additionalProperties: false },
);
/** Network requirements. */
export type NetworkRequirements = Static<typeof NetworkRequirements>;

/** A port the worker listens on. */
export const PortSpec = Type.Object(
  {
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
    name: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,15}$' })),
  },
  { additionalProperties: false },
);
/** A port declaration. */
export type PortSpec = Static<typeof PortSpec>;
