import Type, { type Static } from 'typebox';

/** Which authorizer decides, and with what policies. */
export const AuthorizationSettings = Type.Object(
  {},
  { additionalProperties: false, default: {}, description: 'Authorization: the Cedar policy engine or AWS Verified Permissions.' },
);
/** Authorization settings after defaults. */
export type AuthorizationSettings = Static<typeof AuthorizationSettings>;
