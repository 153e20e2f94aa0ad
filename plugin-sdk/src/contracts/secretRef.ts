import Type, { type Static } from 'typebox';
import { EnvName, SpecPath } from './common.ts';
import { MAX_LIST_ITEMS, MAX_NAME_LENGTH } from './limits.ts';

/** How secret material reaches the worker. */
export const SecretMountStrategy = Type.Union([Type.Literal('env'), Type.Literal('file'), Type.Literal('volume')]);
/** Mount strategy. */
export type SecretMountStrategy = Static<typeof SecretMountStrategy>;

/**
 * A reference to a secret in a credential instance. Only names and versions are stored; the host resolves the value
 * and hands the provider {@link SecretMount} instructions for the worker being created.
 */
export const SecretRef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 512 }),
    credentials: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'credential instance; default instance when absent' })),
    version: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH, description: 'version id or stage (current, previous, pending)' })),
    keys: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH }), { maxItems: MAX_LIST_ITEMS })),
    mount: SecretMountStrategy,
    envName: Type.Optional(EnvName),
    path: Type.Optional(SpecPath),
    onRotation: Type.Optional(Type.Union([Type.Literal('hot'), Type.Literal('restart'), Type.Literal('signal'), Type.Literal('none')], {
      description: 'how the worker follows a rotation: hot (file replaced), restart, signal, none; default hot for file/volume, restart for env',
    })),
    signal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$', description: 'signal sent after a hot file refresh when onRotation is signal, e.g. SIGHUP' })),
  },
  { additionalProperties: false },
);
/** Secret reference. */
export type SecretRef = Static<typeof SecretRef>;

/**
 * Secret material resolved by the host for one worker. Providers deliver it exactly as told and never log,
 * label or persist `value`.
 */
export const SecretMount = Type.Union([
  Type.Object({ strategy: Type.Literal('env'), name: Type.String(), version: Type.String(), envName: Type.String(), value: Type.String() }, { additionalProperties: false }),
  Type.Object({ strategy: Type.Union([Type.Literal('file'), Type.Literal('volume')]), name: Type.String(), version: Type.String(), path: Type.String(), value: Type.String() }, { additionalProperties: false }),
]);
/** Secret mount instruction. */
export type SecretMount = Static<typeof SecretMount>;
