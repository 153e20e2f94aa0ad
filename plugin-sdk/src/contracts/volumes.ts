import Type, { type Static } from 'typebox';

/** Where a volume's content comes from (seed 000: EmptyDir, PersistentVolume, HostPath, Secret, ConfigMap). */
export const VolumeSource = Type.Union([
  Type.Object({ type: Type.Literal('EmptyDir'), sizeMiB: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('HostPath'), path: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('PersistentVolume'), claimName: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('Secret'), secretName: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('ConfigMap'), name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
]);
/** Volume source. */
export type VolumeSource = Static<typeof VolumeSource>;

/** A volume mounted into the worker. */
export const VolumeMount = Type.Object(
  {
    mountPath: Type.String({ minLength: 1 }),
    source: VolumeSource,
    readOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Volume mount. */
export type VolumeMount = Static<typeof VolumeMount>;
