import type { SecretVersion } from '@worker-manager/plugin-sdk';

/** Contract stage to AWS staging label. */
export const AWS_LABEL = { current: 'AWSCURRENT', pending: 'AWSPENDING', previous: 'AWSPREVIOUS' } as const;
/** A contract stage name. */
export type Stage = keyof typeof AWS_LABEL;

const STAGE_OF: Record<string, Stage> = { AWSCURRENT: 'current', AWSPENDING: 'pending', AWSPREVIOUS: 'previous' };

/** True when `version` names a stage rather than a version id. */
export function isStage(version: string): version is Stage {
  return Object.hasOwn(AWS_LABEL, version);
}

/**
 * Tag key prefix marking a revoked version: AWS cannot erase a version's value, so revocation is recorded on the
 * secret (`wm:revoked:<VersionId>` = time of revocation) and the plugin refuses to serve such a version.
 */
export const REVOKED_TAG_PREFIX = 'wm:revoked:';

/**
 * Tag key prefix of a pack of revoked versions (`wm:revoked-set:<digest of the ids>` = the VersionIds, separated by
 * spaces). AWS allows 50 tags per secret and keeps every version of the last 24 hours, so one tag per revoked version
 * stopped revocation after about 48 rotations a day: the plugin folds single tags into packs (six UUIDs to a value of
 * at most 256 characters). A pack is only ever added whole and removed whole, never rewritten, so two writers cannot
 * lose each other's revocations.
 */
export const REVOKED_SET_TAG_PREFIX = 'wm:revoked-set:';

/** Longest tag value AWS accepts. */
export const MAX_TAG_VALUE_LENGTH = 256;

/** The VersionIds a revocation tag marks revoked (none for any other tag). */
export function revokedByTag(key: string, value: string | undefined): string[] {
  if (key.startsWith(REVOKED_TAG_PREFIX)) return [key.slice(REVOKED_TAG_PREFIX.length)];
  if (key.startsWith(REVOKED_SET_TAG_PREFIX)) return (value ?? '').split(' ').filter((id) => id.length > 0);
  return [];
}

/** One version as ListSecretVersionIds shows it. */
export interface AwsVersionEntry {
  versionId: string;
  labels: readonly string[];
  createdAt: Date | undefined;
}

/**
 * The contract's view of an AWS version: AWSCURRENT is `active`; AWSPENDING (not current) `pending`; a revoked tag
 * `revoked` with no stages; anything else (AWSPREVIOUS, or no label) `deprecated`. Labels other than the three AWS
 * ones belong to other tools and are not shown.
 */
export function toSecretVersion(entry: AwsVersionEntry, revoked: ReadonlySet<string>): SecretVersion {
  const createdAt = (entry.createdAt ?? new Date(0)).toISOString();
  if (revoked.has(entry.versionId)) return { version: entry.versionId, status: 'revoked', stages: [], createdAt };
  const stages = (['AWSCURRENT', 'AWSPENDING', 'AWSPREVIOUS'] as const).filter((l) => entry.labels.includes(l)).map((l) => STAGE_OF[l] as Stage);
  const status = stages.includes('current') ? 'active' : stages.includes('pending') ? 'pending' : 'deprecated';
  return { version: entry.versionId, status, stages, createdAt };
}
