import Type, { type Static } from 'typebox';
import { EnvMap, Labels } from './common.ts';
import { HealthCheckConfig } from './healthCheck.ts';
import { NetworkRequirements, PortSpec } from './network.ts';
import { ResourceQuota } from './resourceQuota.ts';
import { SecretRef } from './secretRef.ts';
import { VolumeMount } from './volumes.ts';

/**
 * What to run and with what (seed 000: RuntimeSpec). A container provider needs `image`; a process provider needs
 * `command`. Providers reject what they cannot honour with `WM_ERR_VALIDATION` or `WM_ERR_COMPATIBILITY`.
 */
export const RuntimeSpec = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    command: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    args: Type.Optional(Type.Array(Type.String())),
    env: Type.Optional(EnvMap),
    workingDir: Type.Optional(Type.String({ minLength: 1 })),
    secretRefs: Type.Optional(Type.Array(SecretRef)),
    ports: Type.Optional(Type.Array(PortSpec)),
    volumes: Type.Optional(Type.Array(VolumeMount)),
    labels: Type.Optional(Labels),
    resources: Type.Optional(ResourceQuota),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'the worker is stopped after this long' })),
    network: Type.Optional(NetworkRequirements),
    healthCheck: Type.Optional(HealthCheckConfig),
    user: Type.Optional(Type.String({ minLength: 1 })),
    readOnlyRootFilesystem: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Runtime specification of a worker. */
export type RuntimeSpec = Static<typeof RuntimeSpec>;
