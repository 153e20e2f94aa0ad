import Type, { type Static } from 'typebox';
import { AuditSettings } from './audit/auditSettings.ts';
import { AuthenticationSettings } from './authn/authnSettings.ts';
import { AuthorizationSettings } from './authz/authzSettings.ts';

/** Authentication, authorization and audit. */
export const SecuritySettings = Type.Object(
  {
    authentication: AuthenticationSettings,
    authorization: AuthorizationSettings,
    audit: AuditSettings,
  },
  { additionalProperties: false, default: {}, description: 'Authentication (OIDC), authorization (Cedar / AVP) and audit.' },
);
/** Security settings after defaults. */
export type SecuritySettings = Static<typeof SecuritySettings>;
