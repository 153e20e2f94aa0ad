import { Type, type Static } from '@worker-manager/plugin-sdk';

const Scrypt = Type.Object(
  {
    cost: Type.Optional(Type.Integer({ minimum: 2, maximum: 1_048_576, default: 32_768, description: 'scrypt N (a power of two); used when a store is created' })),
    blockSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, default: 8, description: 'scrypt r' })),
    parallelization: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, default: 1, description: 'scrypt p' })),
  },
  { additionalProperties: false, default: {}, description: 'Cost of the key derivation, stored in the file when the store is created' },
);

/** Instance config of the embedded credential store. Exactly one of `keyFile` and `keyEnv` names the key material. */
export const CredentialsSimpleConfig = Type.Object(
  {
    keyFile: Type.Optional(Type.String({ minLength: 1, description: 'file holding the key material (absolute, or relative to the state directory)' })),
    keyEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: "environment variable holding the key material (grant it in the plugin's env:)" })),
    storeFile: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', default: 'secrets.json', description: 'file name of the store inside the state directory' })),
    maxValueBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 16_777_216, default: 65_536, description: 'largest value accepted (UTF-8 bytes of the string, or of the JSON of a key/value map)' })),
    maxKeys: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'most keys in a key/value secret' })),
    maxVersions: Type.Optional(Type.Integer({ minimum: 2, maximum: 10_000, default: 32, description: 'versions kept per secret; the oldest revoked or unstaged deprecated ones are dropped first' })),
    generatedValueBytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 1_024, default: 32, description: 'random bytes of a value createPendingVersion generates when given none' })),
    lockTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000, default: 10_000, description: 'how long a write waits for the store lock' })),
    lockStaleMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 30_000, description: 'a lock file older than this is left by a dead writer and is removed' })),
    scrypt: Scrypt,
  },
  { additionalProperties: false },
);
/** Config as the host passes it (defaults usually applied). */
export type CredentialsSimpleConfig = Static<typeof CredentialsSimpleConfig>;

/** The config with every default filled in. */
export interface ResolvedConfig {
  keyFile: string | undefined;
  keyEnv: string | undefined;
  storeFile: string;
  maxValueBytes: number;
  maxKeys: number;
  maxVersions: number;
  generatedValueBytes: number;
  lockTimeoutMs: number;
  lockStaleMs: number;
  scrypt: { cost: number; blockSize: number; parallelization: number };
}

/** Fills in defaults here too: the plugin must not depend on the host having applied them. */
export function resolveConfig(config: CredentialsSimpleConfig): ResolvedConfig {
  return {
    keyFile: config.keyFile,
    keyEnv: config.keyEnv,
    storeFile: config.storeFile ?? 'secrets.json',
    maxValueBytes: config.maxValueBytes ?? 65_536,
    maxKeys: config.maxKeys ?? 64,
    maxVersions: config.maxVersions ?? 32,
    generatedValueBytes: config.generatedValueBytes ?? 32,
    lockTimeoutMs: config.lockTimeoutMs ?? 10_000,
    lockStaleMs: config.lockStaleMs ?? 30_000,
    scrypt: {
      cost: config.scrypt?.cost ?? 32_768,
      blockSize: config.scrypt?.blockSize ?? 8,
      parallelization: config.scrypt?.parallelization ?? 1,
    },
  };
}
