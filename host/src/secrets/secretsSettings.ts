import Type, { type Static } from 'typebox';
import { RotationSettings } from './rotation/rotationSettings.ts';

/** One ownership rule: the secrets whose names match `names` (in `credentials`, or in any instance) belong to `tenant`. */
export const TenantRule = Type.Object(
  {
    tenant: Type.String({ minLength: 1, maxLength: 253, description: 'Tenant that owns the matching secrets; only requests acting for it may read them.' }),
    credentials: Type.Optional(Type.String({ minLength: 1, description: 'Credentials instance the rule applies to; every credentials instance when absent.' })),
    names: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), {
      minItems: 1,
      description: 'Secret name globs: `*` matches any characters but `/`, `**` any characters, `?` one character but `/` (e.g. `team-a/*`).',
    }),
  },
  { additionalProperties: false, description: 'A secret ownership rule; the first rule that matches a secret decides its tenant.' },
);
/** Tenant rule. */
export type TenantRule = Static<typeof TenantRule>;

/** The host's credential layer: which tenant owns which secret, the resolution cache, and rotation. */
export const SecretsSettings = Type.Object(
  {
    defaultCredentials: Type.Optional(Type.String({
      minLength: 1,
      description: 'Credentials instance used by secret refs that name none; when absent, the only configured credentials instance.',
    })),
    cacheTtlMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 5_000,
      description: 'How long, in ms, a resolved secret value is reused for further workers (tenant checks still run per request); 0 disables the cache.',
    }),
    tenants: Type.Array(TenantRule, {
      default: [],
      description: 'Secret ownership rules, first match wins. A secret no rule matches belongs to tenant `default`; a request without a tenant acts as tenant `default`.',
    }),
    rotation: RotationSettings,
  },
  { additionalProperties: false, default: {}, description: 'Credential layer: secret ownership, resolution cache and rotation.' },
);
/** Secrets settings after defaults. */
export type SecretsSettings = Static<typeof SecretsSettings>;
