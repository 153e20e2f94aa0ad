import { Type, type Static } from '@worker-manager/plugin-sdk';

const Retry = Type.Object(
  {
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 4, description: 'attempts per AWS call, the first included, for throttling, 5xx, timeouts and connection failures' })),
    baseDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000, default: 200, description: 'backoff before the second attempt; doubles each attempt, with full jitter' })),
    maxDelayMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 300_000, default: 5_000, description: 'longest backoff between two attempts' })),
  },
  { additionalProperties: false, default: {}, description: 'How AWS calls are retried' },
);

/**
 * Instance config of the AWS Secrets Manager credential plugin. Credentials never appear here: the AWS SDK's standard
 * provider chain finds them in the environment granted to the plugin (keys, profile, web identity).
 */
export const AwsSecretsManagerConfig = Type.Object(
  {
    region: Type.Optional(Type.String({ pattern: '^[a-z]{2}(-[a-z]+)+-\\d+$', description: 'AWS region; default: AWS_REGION or the shared config of the granted environment' })),
    endpoint: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', description: 'endpoint URL instead of the regional one (a VPC interface endpoint, or a test double)' })),
    namePrefix: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9/_+=.@-]{0,256}$', default: '', description: 'prepended to every secret name, e.g. `worker-manager/`' })),
    tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'tenant of this instance: written as a tag on the secrets it creates, and required on the secrets it touches' })),
    tenantTagKey: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9 _.:/=+@-]{1,128}$', default: 'worker-manager/tenant', description: 'tag key holding the tenant (used when `tenant` is set)' }),
    ),
    kmsKeyId: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'KMS key (id, ARN or alias) for secrets the plugin creates; default: aws/secretsmanager' })),
    maxValueBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536, default: 65_536, description: 'largest value accepted, in UTF-8 bytes of the SecretString (65536 is the AWS limit)' })),
    maxKeys: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'most keys in a key/value secret' })),
    generatedValueBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_024, default: 32, description: 'random bytes of a value createPendingVersion generates when given none' })),
    requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 300_000, default: 10_000, description: 'deadline of one attempt of an AWS call' })),
    retry: Retry,
  },
  { additionalProperties: false },
);
/** Config as the host passes it (defaults usually applied). */
export type AwsSecretsManagerConfig = Static<typeof AwsSecretsManagerConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  region: string | undefined;
  endpoint: string | undefined;
  namePrefix: string;
  tenant: string | undefined;
  tenantTagKey: string;
  kmsKeyId: string | undefined;
  maxValueBytes: number;
  maxKeys: number;
  generatedValueBytes: number;
  requestTimeoutMs: number;
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(config: AwsSecretsManagerConfig): ResolvedConfig {
  return {
    region: config.region,
    endpoint: config.endpoint,
    namePrefix: config.namePrefix ?? '',
    tenant: config.tenant,
    tenantTagKey: config.tenantTagKey ?? 'worker-manager/tenant',
    kmsKeyId: config.kmsKeyId,
    maxValueBytes: config.maxValueBytes ?? 65_536,
    maxKeys: config.maxKeys ?? 64,
    generatedValueBytes: config.generatedValueBytes ?? 32,
    requestTimeoutMs: config.requestTimeoutMs ?? 10_000,
    retry: {
      maxAttempts: config.retry?.maxAttempts ?? 4,
      baseDelayMs: config.retry?.baseDelayMs ?? 200,
      maxDelayMs: config.retry?.maxDelayMs ?? 5_000,
    },
  };
}
