import Type, { type Static } from 'typebox';
import { RotationSettings } from './rotation/rotationSettings.ts';

/** The host's credential layer: which tenant owns which secret, the resolution cache, and rotation. */
export const SecretsSettings = Type.Object(
  {
    rotation: RotationSettings,
  },
  { additionalProperties: false, default: {}, description: 'Credential layer: secret ownership, resolution cache and rotation.' },
);
/** Secrets settings after defaults. */
export type SecretsSettings = Static<typeof SecretsSettings>;
