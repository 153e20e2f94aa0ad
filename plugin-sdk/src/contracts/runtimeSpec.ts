import Type, { type Static } from 'typebox';
import { Argument, CommandLine, EnvMap, Labels, NUL_FREE, SpecPath } from './common.ts';
import { HealthCheckConfig } from './healthCheck.ts';
import { MAX_ARGS, MAX_IMAGE_LENGTH, MAX_LIST_ITEMS, MAX_TIMER_MS, MAX_USER_LENGTH } from './limits.ts';
import { NetworkRequirements, PortSpec } from './network.ts';
import { ResourceQuota } from './resourceQuota.ts';
import { SecretRef } from './secretRef.ts';
import { VolumeMount } from './volumes.ts';

/**
 * What to run and with what. A container provider needs `image`; a process provider needs
 * `command`. Providers reject what they cannot honour with `WM_ERR_VALIDATION` or `WM_ERR_COMPATIBILITY`. Every field
 * is bounded (limits.ts says why); the host also bounds the whole spec to MAX_SPEC_BYTES of JSON.
 */
export const RuntimeSpec = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_IMAGE_LENGTH })),
    command: Type.Optional(CommandLine),
    args: Type.Optional(Type.Array(Argument, { maxItems: MAX_ARGS })),
    env: Type.Optional(EnvMap),
    workingDir: Type.Optional(SpecPath),
    secretRefs: Type.Optional(Type.Array(SecretRef, { maxItems: MAX_LIST_ITEMS })),
    ports: Type.Optional(Type.Array(PortSpec, { maxItems: MAX_LIST_ITEMS })),
    volumes: Type.Optional(Type.Array(VolumeMount, { maxItems: MAX_LIST_ITEMS })),
    labels: Type.Optional(Labels),
    resources: Type.Optional(ResourceQuota),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMER_MS, description: 'the worker is stopped after this long' })),
    network: Type.Optional(NetworkRequirements),
    healthCheck: Type.Optional(HealthCheckConfig),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_USER_LENGTH, pattern: NUL_FREE })),
    readOnlyRootFilesystem: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Runtime specification of a worker. */
export type RuntimeSpec = Static<typeof RuntimeSpec>;
