import Type, { type Static } from 'typebox';
import { SpecPath } from './common.ts';
import { MAX_NAME_LENGTH } from './limits.ts';

const Name = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH });

/** Where a volume's content comes from: EmptyDir, PersistentVolume, HostPath, Secret, ConfigMap. */
export const VolumeSource = Type.Union([
  // The same ceiling as ResourceQuota.storageMiB (1 PiB).
  Type.Object({ type: Type.Literal('EmptyDir'), sizeMiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_073_741_824 })) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('HostPath'), path: SpecPath }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('PersistentVolume'), claimName: Name }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('Secret'), secretName: Name }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('ConfigMap'), name: Name }, { additionalProperties: false }),
]);
/** Volume source. */
export type VolumeSource = Static<typeof VolumeSource>;

/** A volume mounted into the worker. */
export const VolumeMount = Type.Object(
  {
    mountPath: SpecPath,
    source: VolumeSource,
    readOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Volume mount. */
export type VolumeMount = Static<typeof VolumeMount>;
