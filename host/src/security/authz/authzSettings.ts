import Type, { type Static } from 'typebox';

/** The embedded Cedar engine: policies and schema read from files. */
export const CedarSettings = Type.Object(
  {
    policiesDir: Type.Optional(Type.String({
      minLength: 1,
      description: 'Folder whose `*.cedar` files (not sub-folders) form the policy set, relative to the config file\'s folder. Absent: the policies shipped in the repository\'s `config/policies` (local admin may do everything; others act within their tenant).',
    })),
    schemaFile: Type.String({
      minLength: 1,
      default: 'schema.cedarschema',
      description: 'Cedar schema (human `.cedarschema` or JSON `.json`) the policy set is validated against at start, relative to `policiesDir`. A policy that does not validate stops the host (HOST_ERR_AUTHZ_POLICY_INVALID).',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Embedded Cedar engine (`adapter: cedar`).' },
);
/** Cedar settings after defaults. */
export type CedarSettings = Static<typeof CedarSettings>;

/** AWS Verified Permissions: the policy store lives in AWS. */
export const AvpSettings = Type.Object(
  {
    policyStoreId: Type.String({ minLength: 1, description: 'Id of the Verified Permissions policy store that decides; it holds the same schema and policies as `config/policies`.' }),
    region: Type.String({ minLength: 1, description: 'AWS region of the policy store (e.g. `eu-west-1`). Credentials come from the AWS default chain (environment, profile, instance role), never from this file.' }),
    endpoint: Type.Optional(Type.String({
      minLength: 1,
      description: 'Endpoint URL to call instead of the regional one: a VPC interface endpoint, or a local double in tests.',
    })),
    timeoutMs: Type.Integer({
      minimum: 50,
      maximum: 30_000,
      default: 2_000,
      description: 'Deadline, in ms, of one decision including the SDK\'s retries; past it the request is denied (fail closed) and the reason logged.',
    }),
  },
  { additionalProperties: false, description: 'AWS Verified Permissions (`adapter: avp`).' },
);
/** AVP settings after defaults. */
export type AvpSettings = Static<typeof AvpSettings>;

/** Which authorizer decides, and with what policies. */
export const AuthorizationSettings = Type.Object(
  {
    adapter: Type.Union([Type.Literal('cedar'), Type.Literal('avp')], {
      default: 'cedar',
      description: '`cedar`: the embedded Cedar engine evaluates the policies of `cedar.policiesDir`. `avp`: AWS Verified Permissions `IsAuthorized` against `avp.policyStoreId`. Both see the same entities and context, and both deny on any error (fail closed).',
    }),
    cedar: CedarSettings,
    avp: Type.Optional(AvpSettings),
  },
  { additionalProperties: false, default: {}, description: 'Authorization: the Cedar policy engine or AWS Verified Permissions.' },
);
/** Authorization settings after defaults. */
export type AuthorizationSettings = Static<typeof AuthorizationSettings>;
