import Type, { type Static } from 'typebox';

/** How bearer JWT access tokens from an OpenID Provider (Keycloak) are verified. */
export const OidcSettings = Type.Object(
  {
    issuer: Type.String({
      minLength: 1,
      description: 'Issuer URL exactly as it appears in the tokens\' `iss` (Keycloak: `https://<host>/realms/<realm>`); its discovery document gives the JWKS.',
    }),
    audience: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })], {
      description: 'Accepted `aud` value(s): the token must name at least one (Keycloak: add an audience mapper for the worker-manager client).',
    }),
    requiredScopes: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Scopes every token must carry (space-separated `scope` claim); a token lacking one is refused with reason `scope`.',
    }),
    tenantClaim: Type.String({
      minLength: 1,
      default: 'tenant',
      description: 'Claim holding the caller\'s tenant; a dotted path (`attributes.tenant`) reads nested claims. A token without it has no tenant.',
    }),
    clockSkewSec: Type.Integer({ minimum: 0, maximum: 300, default: 30, description: 'Tolerance, in seconds, applied to `exp` and `nbf` for clocks that disagree.' }),
    jwksCacheMs: Type.Integer({ minimum: 1_000, default: 600_000, description: 'How long, in ms, fetched signing keys are used before the JWKS is fetched again.' }),
    jwksCooldownMs: Type.Integer({
      minimum: 0,
      default: 30_000,
      description: 'Least time, in ms, between two JWKS fetches caused by a token with an unknown `kid` (a rotated key); bounds what forged kids can cost.',
    }),
    discoveryTimeoutMs: Type.Integer({ minimum: 100, default: 5_000, description: 'Deadline, in ms, of the discovery and JWKS requests to the issuer.' }),
    allowInsecureHttp: Type.Boolean({
      default: false,
      description: 'Accept an `http://` issuer. Only for tests against a local identity provider; never in production.',
    }),
  },
  { additionalProperties: false, description: 'OIDC token verification (used when `mode` is `oidc`).' },
);
/** OIDC settings after defaults. */
export type OidcSettings = Static<typeof OidcSettings>;

/** The identity the host acts under for work no caller asked for, and for bus commands that carry no token. */
export const ServiceIdentitySettings = Type.Object(
  {
    commands: Type.Boolean({
      default: false,
      description: 'Run bus commands that carry no token as the host service identity (still authorized by policy). Off: such commands are refused with WM_ERR_AUTHENTICATION.',
    }),
    id: Type.Optional(Type.String({ minLength: 1, description: 'Principal id of the host identity; `host:<host id>` when absent.' })),
    tenant: Type.Optional(Type.String({ minLength: 1, description: 'Tenant the host identity acts for; none when absent.' })),
    roles: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Roles policies see on the host identity (e.g. `wm-service`).' }),
  },
  { additionalProperties: false, default: {}, description: 'The host\'s own service identity: internal work and token-less bus commands.' },
);
/** Service identity settings after defaults. */
export type ServiceIdentitySettings = Static<typeof ServiceIdentitySettings>;

/** Who may call the host, and how that is proven. */
export const AuthenticationSettings = Type.Object(
  {
    mode: Type.Union([Type.Literal('local'), Type.Literal('oidc')], {
      default: 'local',
      description: '`local`: the host writes a random admin token to `<stateDir>/admin.token` (mode 0600) at each start and accepts only it; the API must listen on loopback. `oidc`: bearer JWT access tokens from `oidc.issuer` (Keycloak).',
    }),
    oidc: Type.Optional(OidcSettings),
    // No default on purpose: absent means "decided by api.host", which a default would hide.
    protectMetrics: Type.Optional(Type.Boolean({
      description: 'Require authentication (any valid token) on `/metrics`. Absent: required when `api.host` is not a loopback address, open on 127.0.0.1 / ::1 / localhost, where only this machine can scrape. `false` makes it public wherever the API listens; `true` protects it on loopback too.',
    })),
    serviceIdentity: ServiceIdentitySettings,
  },
  { additionalProperties: false, default: {}, description: 'Authentication of API requests and bus commands.' },
);
/** Authentication settings after defaults. */
export type AuthenticationSettings = Static<typeof AuthenticationSettings>;
