import type { SecretVersion } from '@worker-manager/plugin-sdk';
import type { KvMetadata } from './KvClient.ts';

/** The contract's stages, kept in the key's custom metadata as version numbers. */
export type Stage = 'current' | 'pending' | 'previous';
export const STAGES: readonly Stage[] = ['current', 'pending', 'previous'];
/** Custom-metadata key of each stage. */
export const STAGE_KEY: Readonly<Record<Stage, string>> = { current: 'wm-current', pending: 'wm-pending', previous: 'wm-previous' };

/** Which version holds each stage, after dropping pointers to versions that are gone (destroyed or pruned). */
export type StageMap = Partial<Record<Stage, number>>;

function liveVersion(meta: KvMetadata, raw: string | undefined): number | undefined {
  if (raw === undefined || !/^[1-9][0-9]{0,15}$/.test(raw)) return undefined;
  const v = meta.versions[raw];
  return v === undefined || v.destroyed ? undefined : Number(raw);
}

/**
 * Reads the stages of a key. A key without `wm-current` (written by an operator) has its latest version as current,
 * as Vault itself reads it. A stage never points at a destroyed (revoked) version, and no version holds two stages.
 */
export function stagesOf(meta: KvMetadata): StageMap {
  const custom = meta.custom_metadata ?? {};
  const stages: StageMap = {};
  const current = custom[STAGE_KEY.current] === undefined ? liveVersion(meta, String(meta.current_version)) : liveVersion(meta, custom[STAGE_KEY.current]);
  if (current !== undefined) stages.current = current;
  for (const stage of ['pending', 'previous'] as const) {
    const v = liveVersion(meta, custom[STAGE_KEY[stage]]);
    if (v !== undefined && v !== stages.current && !Object.values(stages).includes(v)) stages[stage] = v;
  }
  return stages;
}

/** The custom metadata with the stages replaced; the operator's own keys are kept. */
export function withStages(meta: KvMetadata | undefined, stages: StageMap): Record<string, string> {
  const custom: Record<string, string> = { ...(meta?.custom_metadata ?? {}) };
  for (const stage of STAGES) {
    const v = stages[stage];
    if (v === undefined) delete custom[STAGE_KEY[stage]];
    else custom[STAGE_KEY[stage]] = String(v);
  }
  return custom;
}

const iso = (t: string): string => {
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? t : new Date(ms).toISOString();
};

/**
 * A version as the contract shows it. Destroyed is `revoked` (the data is gone for good); the current version is
 * `active`, the pending one `pending`; every other version, soft-deleted or not, is `deprecated`.
 * `expiresAt` is Vault's `deletion_time` (from `delete_version_after`, or when it was soft-deleted).
 */
export function versionView(meta: KvMetadata, stages: StageMap, version: number): SecretVersion {
  const v = meta.versions[String(version)];
  const createdAt = iso(v?.created_time ?? new Date(0).toISOString());
  const expiresAt = v !== undefined && v.deletion_time !== '' ? { expiresAt: iso(v.deletion_time) } : {};
  if (v === undefined || v.destroyed) return { version: String(version), status: 'revoked', stages: [], createdAt, ...expiresAt };
  const held = STAGES.filter((s) => stages[s] === version);
  const status = held.includes('current') ? 'active' : held.includes('pending') ? 'pending' : 'deprecated';
  return { version: String(version), status, stages: held, createdAt, ...expiresAt };
}
