import { Type, type Static, secretSourceSchema } from '@worker-manager/plugin-sdk';

/** Where a credential (a Vault token, an AppRole secret_id, a JWT) comes from: never the YAML itself. */
export const SecretSource = secretSourceSchema('file holding it (absolute, or relative to the state directory); re-read at every login');
export type SecretSource = Static<typeof SecretSource>;

const AuthMount = (fallback: string): ReturnType<typeof Type.String> =>
  Type.String({ pattern: '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$', default: fallback, description: `path of the auth method under auth/ (default ${fallback})` });

const TokenAuth = Type.Object(
  {
    method: Type.Literal('token'),
    token: SecretSource,
    renew: Type.Optional(Type.Boolean({ default: true, description: 'renew the token (renew-self) before its TTL ends, when it is renewable' })),
  },
  { additionalProperties: false },
);
const AppRoleAuth = Type.Object(
  {
    method: Type.Literal('approle'),
    mount: Type.Optional(AuthMount('approle')),
    roleId: Type.Union([Type.String({ minLength: 1, description: 'the role_id (an identifier, not a secret)' }), SecretSource]),
    secretId: SecretSource,
  },
  { additionalProperties: false },
);
const JwtAuth = Type.Object(
  {
    method: Type.Literal('jwt'),
    mount: Type.Optional(AuthMount('jwt')),
    role: Type.String({ minLength: 1, description: 'Vault role of the JWT auth method' }),
    jwt: SecretSource,
  },
  { additionalProperties: false },
);
const KubernetesAuth = Type.Object(
  {
    method: Type.Literal('kubernetes'),
    mount: Type.Optional(AuthMount('kubernetes')),
    role: Type.String({ minLength: 1, description: 'Vault role of the Kubernetes auth method' }),
    jwtFile: Type.Optional(
      Type.String({ minLength: 1, default: '/var/run/secrets/kubernetes.io/serviceaccount/token', description: 'service-account token file, re-read at every login (it is rotated)' }),
    ),
  },
  { additionalProperties: false },
);

/** How the plugin gets a Vault token. */
export const VaultAuth = Type.Union([TokenAuth, AppRoleAuth, JwtAuth, KubernetesAuth], { description: 'how the plugin logs in: token, approle, jwt or kubernetes' });
/** Auth block. */
export type VaultAuth = Static<typeof VaultAuth>;

const VaultPath = Type.String({ pattern: '^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$' });

/** Secret names that are dynamic secrets: `<prefix>/<role>` reads `<mount>/creds/<role>`, a credential under a lease. */
export const DynamicSecrets = Type.Object(
  {
    prefix: { ...VaultPath, description: 'secret names <prefix>/<role> are dynamic secrets of this engine (e.g. db)' },
    mount: { ...VaultPath, description: 'path of the secrets engine whose creds/<role> issues them (e.g. database)' },
  },
  { additionalProperties: false },
);
/** One dynamic-secrets block. */
export type DynamicSecrets = Static<typeof DynamicSecrets>;

/** Instance config of the Vault credential plugin. */
export const CredentialsVaultConfig = Type.Object(
  {
    address: Type.String({ pattern: '^https?://[^\\s/?#]+/?$', description: 'Vault address, e.g. https://vault.example.com:8200' }),
    namespace: Type.Optional(Type.String({ minLength: 1, description: 'Vault Enterprise namespace (X-Vault-Namespace)' })),
    mount: Type.Optional({ ...VaultPath, default: 'secret', description: 'path of the KV version 2 secrets engine' }),
    pathPrefix: Type.Optional({ ...VaultPath, description: 'folder under the mount that holds this instance’s secrets; a secret name is a path below it' }),
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the CA that signed Vault’s certificate (absolute, or relative to the state directory)' })),
    auth: VaultAuth,
    maxValueBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, default: 65_536, description: 'largest value accepted (UTF-8 bytes of the string, or of the JSON of a key/value map)' })),
    maxKeys: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000, default: 64, description: 'most keys in a key/value secret' })),
    generatedValueBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_024, default: 32, description: 'random bytes of a value createPendingVersion generates when given none' })),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000, description: 'deadline of one HTTP request to Vault' })),
    readRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: 2, description: 'retries of a read after a transient failure (network, 5xx, 429, sealed)' })),
    tokenRefreshFraction: Type.Optional(
      Type.Number({ minimum: 0.1, maximum: 0.9, default: 0.5, description: 'renew (token) or log in again (approle, jwt, kubernetes) once this fraction of the token TTL has passed' }),
    ),
    requestTokenLookback: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'newest versions searched for a retried write’s requestToken' }),
    ),
    dynamic: Type.Optional(
      Type.Array(DynamicSecrets, { maxItems: 32, description: 'secret name prefixes served by dynamic secrets engines (database, rabbitmq, ...): each read issues a credential under a lease' }),
    ),
    leaseRenewFraction: Type.Optional(
      Type.Number({ minimum: 0.1, maximum: 0.9, default: 0.5, description: 'renew a dynamic secret’s lease once this fraction of its TTL has passed' }),
    ),
    transitMount: Type.Optional({ ...VaultPath, default: 'transit', description: 'path of the transit secrets engine (encrypt, decrypt, rotateKey, rewrap)' }),
  },
  { additionalProperties: false },
);
/** Config as the host passes it. */
export type CredentialsVaultConfig = Static<typeof CredentialsVaultConfig>;

/** The auth block with every default filled in. */
export type ResolvedAuth =
  | { method: 'token'; token: SecretSource; renew: boolean }
  | { method: 'approle'; mount: string; roleId: string | SecretSource; secretId: SecretSource }
  | { method: 'jwt'; mount: string; role: string; jwt: SecretSource }
  | { method: 'kubernetes'; mount: string; role: string; jwt: SecretSource };

/** The config with every default filled in. */
export interface ResolvedConfig {
  address: string;
  namespace: string | undefined;
  mount: string;
  pathPrefix: string | undefined;
  caFile: string | undefined;
  auth: ResolvedAuth;
  maxValueBytes: number;
  maxKeys: number;
  generatedValueBytes: number;
  requestTimeoutMs: number;
  readRetries: number;
  tokenRefreshFraction: number;
  requestTokenLookback: number;
  dynamic: DynamicSecrets[];
  leaseRenewFraction: number;
  transitMount: string;
}

function resolveAuth(auth: VaultAuth): ResolvedAuth {
  switch (auth.method) {
    case 'token':
      return { method: 'token', token: auth.token, renew: auth.renew ?? true };
    case 'approle':
      return { method: 'approle', mount: auth.mount ?? 'approle', roleId: auth.roleId, secretId: auth.secretId };
    case 'jwt':
      return { method: 'jwt', mount: auth.mount ?? 'jwt', role: auth.role, jwt: auth.jwt };
    case 'kubernetes':
      return { method: 'kubernetes', mount: auth.mount ?? 'kubernetes', role: auth.role, jwt: { file: auth.jwtFile ?? '/var/run/secrets/kubernetes.io/serviceaccount/token' } };
  }
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(config: CredentialsVaultConfig): ResolvedConfig {
  return {
    address: config.address.replace(/\/$/, ''),
    namespace: config.namespace,
    mount: config.mount ?? 'secret',
    pathPrefix: config.pathPrefix,
    caFile: config.caFile,
    auth: resolveAuth(config.auth),
    maxValueBytes: config.maxValueBytes ?? 65_536,
    maxKeys: config.maxKeys ?? 64,
    generatedValueBytes: config.generatedValueBytes ?? 32,
    requestTimeoutMs: config.requestTimeoutMs ?? 10_000,
    readRetries: config.readRetries ?? 2,
    tokenRefreshFraction: config.tokenRefreshFraction ?? 0.5,
    requestTokenLookback: config.requestTokenLookback ?? 10,
    dynamic: config.dynamic ?? [],
    leaseRenewFraction: config.leaseRenewFraction ?? 0.5,
    transitMount: config.transitMount ?? 'transit',
  };
}
