import Type, { type Static } from 'typebox';
import { Timestamp } from './common.ts';
import { call, type Contract } from './operation.ts';

/** Lifecycle status of a secret version. */
export const SecretVersionStatus = Type.Union([Type.Literal('active'), Type.Literal('pending'), Type.Literal('deprecated'), Type.Literal('revoked')]);
/** Version status. */
export type SecretVersionStatus = Static<typeof SecretVersionStatus>;

/** A secret value: a string or a flat key/value map. */
export const SecretPayload = Type.Union([Type.String(), Type.Record(Type.String({ minLength: 1 }), Type.String())]);
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

/** A secret value with its version; only the host's SecretBroker sees it. */
export const SecretValue = Type.Object(
  { name: Type.String(), version: Type.String(), value: SecretPayload, leaseTtlMs: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
/** Secret value. */
export type SecretValue = Static<typeof SecretValue>;

const ByName = Type.Object({ name: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });
const ByVersion = Type.Object({ name: Type.String({ minLength: 1, maxLength: 512 }), version: Type.String({ minLength: 1 }) }, { additionalProperties: false });

/**
 * The CredentialProvider contract. Rotation is split into steps the host's RotationEngine drives
 * (create a pending version, test it, promote it, revoke the old one), so a crash between steps can be resumed.
 */
export const CredentialProviderContract = {
  name: 'credentials',
  version: '1.0.0',
  operations: {
    getSecret: call({
      params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 512 }), version: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
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
      params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 512 }), value: SecretPayload }, { additionalProperties: false }),
      result: SecretVersion,
      capability: 'secret.write',
      idempotent: false,
    }),
    createPendingVersion: call({
      params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 512 }), value: Type.Optional(SecretPayload) }, { additionalProperties: false }),
      result: SecretVersion,
      capability: 'secret.rotate',
      idempotent: false,
    }),
    testVersion: call({ params: ByVersion, result: Type.Object({ ok: Type.Boolean(), reason: Type.Optional(Type.String()) }, { additionalProperties: false }), capability: 'secret.rotate', idempotent: true }),
    promoteVersion: call({ params: ByVersion, result: SecretVersion, capability: 'secret.rotate', idempotent: true }),
    revokeVersion: call({ params: ByVersion, result: SecretVersion, capability: 'secret.revoke', idempotent: true }),
  },
} as const satisfies Contract;

/** The CredentialProvider contract type. */
export type CredentialProviderContract = typeof CredentialProviderContract;
