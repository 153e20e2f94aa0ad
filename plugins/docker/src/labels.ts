import { createHash } from 'node:crypto';
import type { OwnerLabels, ResourceQuota, RuntimeSpec } from '@worker-manager/plugin-sdk';

/** What a labelled resource is to the plugin. */
export type ResourceKind = 'worker' | 'network' | 'volume';

/** The label keys of one instance; `prefix` is the configured label prefix. */
export class LabelKeys {
  readonly host: string;
  readonly instance: string;
  readonly workerId: string;
  readonly epoch: string;
  readonly kind: string;
  readonly specHash: string;
  readonly createdAt: string;
  readonly resources: string;
  readonly ports: string;
  readonly secretsDir: string;
  /** JSON `[name, path, target][]`: where each file secret of the worker is in the container (names, never values). */
  readonly secretFiles: string;
  readonly timeoutMs: string;

  constructor(prefix: string) {
    this.host = `${prefix}/host`;
    this.instance = `${prefix}/instance`;
    this.workerId = `${prefix}/worker-id`;
    this.epoch = `${prefix}/epoch`;
    this.kind = `${prefix}/kind`;
    this.specHash = `${prefix}/spec-hash`;
    this.createdAt = `${prefix}/created-at`;
    this.resources = `${prefix}/resources`;
    this.ports = `${prefix}/ports`;
    this.secretsDir = `${prefix}/secrets-dir`;
    this.secretFiles = `${prefix}/secret-files`;
    this.timeoutMs = `${prefix}/timeout-ms`;
  }

  /** Keys the plugin keeps for itself; the others on a container are the spec's labels. */
  internal(): Set<string> {
    return new Set([this.workerId, this.epoch, this.kind, this.specHash, this.createdAt, this.resources, this.ports, this.secretsDir, this.secretFiles, this.timeoutMs]);
  }
}

/** Owner labels under the configured prefix (equal to `ctx.owner` with the default prefix). */
export function ownerLabels(keys: LabelKeys, owner: OwnerLabels): Record<string, string> {
  return { [keys.host]: owner['worker-manager/host'], [keys.instance]: owner['worker-manager/instance'] };
}

/** Engine list filter selecting this instance's resources, optionally of one kind and with more labels. */
export function ownerFilter(keys: LabelKeys, owner: OwnerLabels, extra: Record<string, string> = {}): { label: string[] } {
  const all = { ...ownerLabels(keys, owner), ...extra };
  return { label: Object.entries(all).map(([k, v]) => `${k}=${v}`) };
}

/** JSON with sorted keys, to compare specs whatever the key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Hash of the spec (it holds secret names, never values) that tells a repeated create from a different one. */
export function specHash(spec: RuntimeSpec): string {
  return createHash('sha256').update(canonical(spec)).digest('hex').slice(0, 32);
}

/** Reads the resources label back; a missing or damaged label counts as no reservation. */
export function parseResources(value: string | undefined): ResourceQuota {
  if (value === undefined) return {};
  try {
    const r = JSON.parse(value) as ResourceQuota;
    return typeof r === 'object' && r !== null ? r : {};
  } catch {
    return {};
  }
}
