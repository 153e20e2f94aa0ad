import Type, { type Static } from 'typebox';

/** Resources requested by (and reserved for) one worker. All fields are optional: absent means "no limit asked". */
export const ResourceQuota = Type.Object(
  {
    cpuMillicores: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_024_000 })),
    memoryMiB: Type.Optional(Type.Integer({ minimum: 4, maximum: 16_777_216 })),
    gpu: Type.Optional(Type.Integer({ minimum: 0, maximum: 64 })),
    storageMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_073_741_824 })),
  },
  { additionalProperties: false },
);
/** CPU in millicores, memory and storage in MiB, whole GPUs. */
export type ResourceQuota = Static<typeof ResourceQuota>;

/** The amounts a provider reports as total, used or available. */
export const ResourceAmounts = Type.Object(
  {
    cpuMillicores: Type.Integer({ minimum: 0 }),
    memoryMiB: Type.Integer({ minimum: 0 }),
    gpu: Type.Integer({ minimum: 0 }),
    storageMiB: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
/** Concrete resource amounts. */
export type ResourceAmounts = Static<typeof ResourceAmounts>;

/** One reason a quota does not fit. */
export interface QuotaShortfall {
  resource: keyof ResourceAmounts;
  requested: number;
  available: number;
}

/**
 * Checks a quota against available capacity.
 * Returns the resources that do not fit; an empty list means the quota fits.
 */
export function quotaShortfalls(quota: ResourceQuota, available: ResourceAmounts): QuotaShortfall[] {
  const out: QuotaShortfall[] = [];
  const check = (resource: keyof ResourceAmounts, requested: number | undefined): void => {
    if (requested !== undefined && requested > available[resource]) {
      out.push({ resource, requested, available: available[resource] });
    }
  };
  check('cpuMillicores', quota.cpuMillicores);
  check('memoryMiB', quota.memoryMiB);
  check('gpu', quota.gpu);
  check('storageMiB', quota.storageMiB);
  return out;
}

/** True when the quota fits in the available amounts. */
export function isQuotaCompatible(quota: ResourceQuota, available: ResourceAmounts): boolean {
  return quotaShortfalls(quota, available).length === 0;
}
