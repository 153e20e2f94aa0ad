import { secretSourceSchema, Type, type SecretSource, type Static } from '@worker-manager/plugin-sdk';

const HttpsUrl = (description: string) => Type.Optional(Type.String({ pattern: '^https://[^\\s/]+(/[^\\s]*)?$', description }));

const Retry = Type.Object(
  {
    maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, default: 4, description: 'retries per ARM or token request (throttling with Retry-After, 5xx, connection failures), after the first attempt' })),
    retryDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000, default: 800, description: 'backoff before the first retry when ARM gives no Retry-After; doubles each retry, with jitter' })),
    maxRetryDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 300_000, default: 30_000, description: 'longest backoff between two attempts' })),
  },
  { additionalProperties: false, default: {}, description: "How the Azure SDK's retry policies retry a request" },
);

/**
 * Instance config of the Azure Container Instances provider: one instance is one subscription, resource group and
 * location, reached with one service principal. The client secret never appears here: it is read from a file or an
 * environment variable granted to the plugin.
 */
export const AzureAciConfig = Type.Object(
  {
    subscriptionId: Type.String({ pattern: '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$', description: 'subscription of the resource group' }),
    resourceGroup: Type.String({ pattern: '^[-\\w._()]{1,90}$', description: 'resource group where workers are created (it must exist)' }),
    location: Type.String({ pattern: '^[a-z0-9]{1,40}$', description: 'Azure region of the container groups, e.g. westeurope' }),
    tenantId: Type.String({ pattern: '^[0-9A-Za-z.-]{1,100}$', description: 'Microsoft Entra tenant (directory) of the service principal' }),
    clientId: Type.String({ pattern: '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$', description: 'application (client) id of the service principal' }),
    clientSecret: secretSourceSchema('file holding the client secret (absolute, or relative to the state directory); read when a plugin thread starts'),
    authorityHost: HttpsUrl('Microsoft Entra authority, e.g. https://login.microsoftonline.us; default: the public cloud. A configured authority is trusted as given (no instance discovery)'),
    endpoint: HttpsUrl('Azure Resource Manager endpoint; default: https://management.azure.com'),
    credentialScope: Type.Optional(Type.String({ minLength: 1, description: 'scope of the ARM token; default: <endpoint origin>/.default' })),
    caCertFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of extra CA certificates to trust besides the system ones (a private endpoint, a TLS-inspecting gateway); absolute or relative to the state directory' })),
    cpu: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 32, default: 1, description: 'CPU cores requested for a worker whose spec gives no cpuMillicores' })),
    memoryInGB: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 256, default: 1.5, description: 'memory (GB) requested for a worker whose spec gives no memoryMiB' })),
    namePrefix: Type.Optional(Type.String({ pattern: '^[a-z]([a-z0-9]{0,13})$', default: 'wm', description: 'prefix of container group names (then a hash of host, instance and worker id)' })),
    pollIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, default: 2_000, description: 'how often followed logs and a restart waiting for Running read ARM' })),
    restartTimeoutMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 120_000, description: 'how long restartWorker waits for the container to be Running again' })),
    retry: Retry,
  },
  { additionalProperties: false },
);
/** Config as the host passes it (defaults usually applied). */
export type AzureAciConfig = Static<typeof AzureAciConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  tenantId: string;
  clientId: string;
  clientSecret: SecretSource;
  authorityHost: string | undefined;
  endpoint: string;
  credentialScope: string;
  caCertFile: string | undefined;
  cpu: number;
  memoryInGB: number;
  namePrefix: string;
  pollIntervalMs: number;
  restartTimeoutMs: number;
  retry: { maxRetries: number; retryDelayMs: number; maxRetryDelayMs: number };
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(c: AzureAciConfig): ResolvedConfig {
  const endpoint = (c.endpoint ?? 'https://management.azure.com').replace(/\/+$/, '');
  return {
    subscriptionId: c.subscriptionId,
    resourceGroup: c.resourceGroup,
    location: c.location,
    tenantId: c.tenantId,
    clientId: c.clientId,
    clientSecret: c.clientSecret,
    authorityHost: c.authorityHost?.replace(/\/+$/, ''),
    endpoint,
    credentialScope: c.credentialScope ?? `${new URL(endpoint).origin}/.default`,
    caCertFile: c.caCertFile,
    cpu: c.cpu ?? 1,
    memoryInGB: c.memoryInGB ?? 1.5,
    namePrefix: c.namePrefix ?? 'wm',
    pollIntervalMs: c.pollIntervalMs ?? 2_000,
    restartTimeoutMs: c.restartTimeoutMs ?? 120_000,
    retry: {
      maxRetries: c.retry?.maxRetries ?? 4,
      retryDelayMs: c.retry?.retryDelayMs ?? 800,
      maxRetryDelayMs: c.retry?.maxRetryDelayMs ?? 30_000,
    },
  };
}
