import Type, { type Static } from 'typebox';

/**
 * Marks a value the store issued under a lease that the plugin keeps alive and ends on request (capability
 * `secret.lease`): a dynamic database credential, say. The value's `version` names the lease (an opaque handle, never
 * the store's own lease id); every read of `current` may issue a new one. The plugin renews the lease itself while it
 * lasts; `leaseTtlMs` is set only when the lease cannot be renewed, so the host moves its consumers onto a fresh value
 * before it ends. Once no worker holds the lease any more, the host calls `releaseLease` with that version.
 */
export const SecretLease = Type.Object(
  { renewable: Type.Boolean({ description: 'the plugin renews the lease before it ends; false: it ends after leaseTtlMs' }) },
  { additionalProperties: false, description: 'the value was issued under a lease the plugin ends on releaseLease (capability secret.lease)' },
);
/** Lease marker of a secret value. */
export type SecretLease = Static<typeof SecretLease>;

/** Params of `releaseLease`: the secret and the version that names its lease. */
export const ReleaseLeaseParams = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 512, description: 'name of the secret in the store' }),
    version: Type.String({ minLength: 1, maxLength: 256, description: 'the version getSecret answered with the lease' }),
  },
  { additionalProperties: false },
);
/** Release params. */
export type ReleaseLeaseParams = Static<typeof ReleaseLeaseParams>;

/**
 * What `releaseLease` answers. `released: false` when the plugin no longer knew the lease (it had ended, or was
 * released before): the call is idempotent, and the host forgets the lease either way.
 */
export const ReleaseLeaseResult = Type.Object({ released: Type.Boolean() }, { additionalProperties: false });
/** Release result. */
export type ReleaseLeaseResult = Static<typeof ReleaseLeaseResult>;
