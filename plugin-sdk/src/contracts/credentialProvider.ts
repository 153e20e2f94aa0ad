import Type, { type Static } from 'typebox';
import { Timestamp } from './common.ts';
import { call, type Contract } from './operation.ts';
import { ReleaseLeaseParams, ReleaseLeaseResult, SecretLease } from './secretLease.ts';
import { TransitCiphertextParams, TransitEncryptParams, TransitKeyParams, TransitOpened, TransitRotated, TransitSealed } from './transit.ts';

/** Lifecycle status of a secret version. */
export const SecretVersionStatus = Type.Union([Type.Literal('active'), Type.Literal('pending'), Type.Literal('deprecated'), Type.Literal('revoked')]);
/** Version status. */
export type SecretVersionStatus = Static<typeof SecretVersionStatus>;

const payload = (options: { description?: string } = {}) => Type.Union([Type.String(), Type.Record(Type.String({ minLength: 1 }), Type.String())], options);

/** A secret value: a string or a flat key/value map. */
export const SecretPayload = payload();
/** Secret payload. */
export type SecretPayload = Static<typeof SecretPayload>;

/** Metadata of one version; never the value. Stages follow AWS (`current`, `pending`, `previous`). */
export const SecretVersion = Type.Object(
  {
    version: Type.String({ minLength: 1 }),
    status: SecretVersionStatus,
    stages: Type.Array(Type.String()),
    createdAt: Timestamp,
    expiresAt: Type.Optional(Timestamp),
  },
  { additionalProperties: false },
);
/** Secret version metadata. */
export type SecretVersion = Static<typeof SecretVersion>;

/**
 * A secret value with its version; only the host's SecretBroker sees it. `leaseTtlMs`: the value stops working after
 * this long (the host renews it in the workers at two thirds of it). `lease`: the value was issued under a lease the
 * plugin ends on `releaseLease` (capability `secret.lease`; see {@link SecretLease}).
 */
export const SecretValue = Type.Object(
  { name: Type.String(), version: Type.String(), value: SecretPayload, leaseTtlMs: Type.Optional(Type.Integer({ minimum: 0 })), lease: Type.Optional(SecretLease) },
  { additionalProperties: false },
);
/** Secret value. */
export type SecretValue = Static<typeof SecretValue>;

const SecretName = Type.String({ minLength: 1, maxLength: 512, description: 'name of the secret in the store' });
const VersionOrStage = Type.String({
  minLength: 1,
  description: 'a version id, or a stage name: `current`, `pending` or `previous` (AWSCURRENT, AWSPENDING, AWSPREVIOUS)',
});

/**
 * Makes a write safe to retry (capability `secret.write.idempotent`): the same secret, token and value give back the
 * version the first call made, and no new one; the same token with a different value is `WM_ERR_CONFLICT`. A plugin
 * without the capability ignores it. 8 to 64 characters of `A-Z a-z 0-9 _ -`; never derived from the value.
 */
export const RequestToken = Type.String({
  minLength: 8,
  maxLength: 64,
  pattern: '^[A-Za-z0-9_-]+$',
  description: 'idempotency token (capability secret.write.idempotent): a retry with the same token and value returns the version the first call made',
});
/** Request token. */
export type RequestToken = Static<typeof RequestToken>;

const ByName = Type.Object({ name: SecretName }, { additionalProperties: false });
const ByVersion = Type.Object({ name: SecretName, version: VersionOrStage }, { additionalProperties: false });

/**
 * The CredentialProvider contract. Rotation is split into steps the host's RotationEngine drives
 * (create a pending version, test it, promote it, revoke the old one), so a crash between steps can be resumed.
 * Optional parts: `releaseLease` ends a lease once no worker holds it (`secret.lease`); `encrypt`, `decrypt`,
 * `rotateKey` and `rewrap` use encryption keys the store holds, for secrets stored encrypted elsewhere
 * (`credentials.transit`).
 */
export const CredentialProviderContract = {
  name: 'credentials',
  version: '1.0.0',
  operations: {
    getSecret: call({
      params: Type.Object(
        { name: SecretName, version: Type.Optional(Type.String({ minLength: 1, description: 'a version id or a stage name (`current`, `pending`, `previous`); absent means `current`' })) },
        { additionalProperties: false },
      ),
      result: SecretValue,
      capability: 'secret.read',
      idempotent: true,
    }),
    listVersions: call({ params: ByName, result: Type.Array(SecretVersion), capability: 'secret.read', idempotent: true }),
    describe: call({
      params: ByName,
      result: Type.Object({ name: Type.String(), currentVersion: Type.Optional(Type.String()), versions: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
      capability: 'secret.read',
      idempotent: true,
    }),
    putSecret: call({
      params: Type.Object(
        {
          name: SecretName,
          value: payload({ description: 'the new value; it becomes the current version (a new name is created)' }),
          requestToken: Type.Optional(RequestToken),
        },
        { additionalProperties: false },
      ),
      result: SecretVersion,
      capability: 'secret.write',
      idempotent: false,
    }),
    createPendingVersion: call({
      params: Type.Object(
        {
          name: SecretName,
          value: Type.Optional(payload({ description: 'the value of the pending version; absent: the plugin generates one' })),
          requestToken: Type.Optional(RequestToken),
        },
        { additionalProperties: false },
      ),
      result: SecretVersion,
      capability: 'secret.rotate',
      idempotent: false,
    }),
    testVersion: call({ params: ByVersion, result: Type.Object({ ok: Type.Boolean(), reason: Type.Optional(Type.String()) }, { additionalProperties: false }), capability: 'secret.rotate', idempotent: true }),
    promoteVersion: call({ params: ByVersion, result: SecretVersion, capability: 'secret.rotate', idempotent: true }),
    revokeVersion: call({ params: ByVersion, result: SecretVersion, capability: 'secret.revoke', idempotent: true }),
    releaseLease: call({ params: ReleaseLeaseParams, result: ReleaseLeaseResult, capability: 'secret.lease', idempotent: true }),
    // A repeated encrypt, decrypt or rewrap is harmless (a new ciphertext at most); a repeated rotation is another one.
    encrypt: call({ params: TransitEncryptParams, result: TransitSealed, capability: 'credentials.transit', idempotent: true }),
    decrypt: call({ params: TransitCiphertextParams, result: TransitOpened, capability: 'credentials.transit', idempotent: true }),
    rotateKey: call({ params: TransitKeyParams, result: TransitRotated, capability: 'credentials.transit', idempotent: false }),
    rewrap: call({ params: TransitCiphertextParams, result: TransitSealed, capability: 'credentials.transit', idempotent: true }),
  },
} as const satisfies Contract;

/** The CredentialProvider contract type. */
export type CredentialProviderContract = typeof CredentialProviderContract;
