import { Type, type Static, secretSourceSchema } from '@worker-manager/plugin-sdk';

/** Where a client secret comes from: a file or an environment variable, never the YAML itself. */
export const SecretSource = secretSourceSchema('file holding it (absolute, or relative to the state directory); re-read before every grant that needs it');
export type SecretSource = Static<typeof SecretSource>;

const ClientIdPattern = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: '^[A-Za-z0-9._:@-]+\\*?$',
  description: 'a Keycloak clientId, or a prefix ending in * (ci-* serves every client whose clientId starts with ci-)',
});

/** One client (or family of clients, by prefix) whose token and client secret this instance serves. */
const ServedClient = Type.Object(
  {
    clientId: ClientIdPattern,
    secret: Type.Optional(
      Type.Union([SecretSource, Type.Literal('admin')], {
        description: "where the plugin gets this client's secret for token grants: a file, an env variable, or 'admin' (read through the admin API; the default when admin is configured)",
      }),
    ),
    scope: Type.Optional(Type.String({ minLength: 1, maxLength: 1_024, description: 'scope parameter of the token request (space-separated); absent: the client’s default scopes' })),
    rotate: Type.Optional(Type.Boolean({ default: false, description: 'serve client-secret/<clientId> (read and rotate through the admin API)' })),
  },
  { additionalProperties: false },
);

/** The admin client: a confidential client whose service account holds realm-management roles. */
const AdminClient = Type.Object(
  {
    clientId: Type.String({ minLength: 1, maxLength: 255, description: 'clientId of the admin client (service account with realm-management view-clients, or manage-clients to rotate)' }),
    secret: SecretSource,
  },
  { additionalProperties: false },
);

/** Instance config of the Keycloak credential plugin. */
export const CredentialsKeycloakConfig = Type.Object(
  {
    baseUrl: Type.String({ pattern: '^https?://[^\\s?#]+[^/\\s?#]$', description: 'Keycloak base URL without a trailing slash, e.g. https://sso.example.com (or https://host/auth for Keycloak < 17)' }),
    realm: Type.String({ minLength: 1, maxLength: 255, pattern: '^[^/\\s?#%]+$', description: 'realm of the clients' }),
    admin: Type.Optional(AdminClient),
    clients: Type.Array(ServedClient, { minItems: 1, maxItems: 1_000, description: 'the clients this instance serves; any other name is WM_ERR_SECRET_NOT_FOUND' }),
    tokenSkewSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3_600, default: 30, description: 'a cached token is replaced this long before it expires (at most half its lifetime)' }),
    ),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000, description: 'deadline of one HTTP request to Keycloak' })),
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the CA that signed Keycloak’s certificate, when it is not one Node trusts (absolute, or relative to the state directory)' })),
    allowHttp: Type.Optional(Type.Boolean({ default: false, description: 'accept an http:// baseUrl (tests and loopback only: tokens and secrets would cross the network in clear)' })),
    stateFile: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', default: 'keycloak-versions.json', description: 'file in the state directory that remembers revoked secret versions (fingerprints only)' }),
    ),
  },
  { additionalProperties: false },
);
/** Config as the host passes it. */
export type CredentialsKeycloakConfig = Static<typeof CredentialsKeycloakConfig>;

/** A served client with its defaults filled in. */
export interface ResolvedClient {
  /** The clientId, or the prefix when `prefix` is true. */
  clientId: string;
  prefix: boolean;
  secret: SecretSource | 'admin';
  scope: string | undefined;
  rotate: boolean;
}

/** The config with every default filled in. */
export interface ResolvedConfig {
  baseUrl: string;
  realm: string;
  admin: { clientId: string; secret: SecretSource } | undefined;
  clients: ResolvedClient[];
  tokenSkewMs: number;
  requestTimeoutMs: number;
  caFile: string | undefined;
  allowHttp: boolean;
  stateFile: string;
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(config: CredentialsKeycloakConfig): ResolvedConfig {
  return {
    baseUrl: config.baseUrl,
    realm: config.realm,
    admin: config.admin,
    clients: config.clients.map((c) => ({
      clientId: c.clientId.endsWith('*') ? c.clientId.slice(0, -1) : c.clientId,
      prefix: c.clientId.endsWith('*'),
      secret: c.secret ?? 'admin',
      scope: c.scope,
      rotate: c.rotate ?? false,
    })),
    tokenSkewMs: (config.tokenSkewSeconds ?? 30) * 1_000,
    requestTimeoutMs: config.requestTimeoutMs ?? 10_000,
    caFile: config.caFile,
    allowHttp: config.allowHttp ?? false,
    stateFile: config.stateFile ?? 'keycloak-versions.json',
  };
}
