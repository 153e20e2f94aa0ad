/** What a capability is for, and which contract it belongs to. */
export interface CapabilityInfo {
  readonly contract: 'worker-provider' | 'credentials';
  readonly description: string;
  /** Required capabilities must be declared by every plugin of the contract. */
  readonly required: boolean;
  /** The version the host speaks; a plugin's declared version must satisfy `^version` (same major, not older). */
  readonly version: string;
}

/**
 * Every capability a plugin may declare, with the version the host speaks. A plugin declares the version it
 * implements (`worker.exec: 1.0.0`); the host accepts it when it satisfies `^<host version>` (same major).
 *
 * `worker.lifecycle` is at 2: since 2.0.0 `createWorker` returns once the infrastructure has accepted the worker
 * (state `Creating`, `Starting` with a pending reason, or already `Running`), and the worker's later states arrive as
 * events or through `getWorkerStatus`. A 1.x provider (whose create waited for Running) is refused at negotiation.
 */
export const CAPABILITIES = {
  'worker.lifecycle': { contract: 'worker-provider', required: true, version: '2.0.0', description: 'createWorker, terminateWorker, getWorkerStatus, listWorkers' },
  'worker.logs': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'getLogs without follow' },
  'worker.logs.follow': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'getLogs with follow: true' },
  'worker.exec': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'executeCommand' },
  'worker.pause': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'pauseWorker and resumeWorker' },
  'worker.restart': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'restartWorker' },
  'worker.portForward': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'portForward' },
  'worker.capacity': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'getCapacity' },
  'worker.events': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'the plugin emits WorkerEvents on its own (stream_worker_events)' },
  'worker.resources.memory': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'enforces resources.memoryMiB' },
  'worker.resources.cpu': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'enforces resources.cpuMillicores' },
  'worker.resources.gpu': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'honours resources.gpu > 0' },
  'worker.image': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'runs spec.image' },
  'worker.ports': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'publishes spec.ports' },
  'worker.volumes': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'mounts spec.volumes' },
  'worker.network.isolation': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'honours network isolation Strict and Complete' },
  'worker.healthCheck': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'runs spec.healthCheck' },
  'worker.secrets.env': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'delivers secret mounts as environment variables' },
  'worker.secrets.file': { version: '1.0.0', contract: 'worker-provider', required: false, description: 'delivers secret mounts as files' },
  'worker.secrets.refresh': {
    version: '1.0.0',
    contract: 'worker-provider',
    required: false,
    description: 'refreshSecrets: replaces file secrets of a running worker atomically and signals it; restartWorker with fresh secrets',
  },
  'secret.read': { version: '1.0.0', contract: 'credentials', required: true, description: 'getSecret, listVersions, describe' },
  'secret.write': { version: '1.0.0', contract: 'credentials', required: false, description: 'putSecret' },
  'secret.rotate': { version: '1.0.0', contract: 'credentials', required: false, description: 'createPendingVersion, testVersion, promoteVersion' },
  'secret.revoke': { version: '1.0.0', contract: 'credentials', required: false, description: 'revokeVersion' },
  'secret.write.idempotent': {
    version: '1.0.0',
    contract: 'credentials',
    required: false,
    description: 'putSecret and createPendingVersion honour requestToken: a retried write with the same token returns the version it made instead of making another',
  },
  'secret.rotate.immediate': {
    version: '1.0.0',
    contract: 'credentials',
    required: false,
    description: 'createPendingVersion makes a version that is live at once; the previous one stays valid for a grace period the plugin reports',
  },
  'secret.lease': {
    version: '1.0.0',
    contract: 'credentials',
    required: false,
    description: 'getSecret may answer a value issued under a lease (SecretValue.lease, its version naming the lease) that the plugin renews; releaseLease ends it once the host says no worker holds it',
  },
  'credentials.transit': {
    version: '1.0.0',
    contract: 'credentials',
    required: false,
    description: 'encrypt, decrypt, rotateKey and rewrap with named keys the store holds, for secrets stored encrypted elsewhere',
  },
} as const satisfies Record<string, CapabilityInfo>;

/** A capability name. */
export type CapabilityName = keyof typeof CAPABILITIES;

/** The semver range a declared version of `name` must satisfy for a host built on this SDK to accept it. */
export function capabilityRange(name: CapabilityName): string {
  return `^${CAPABILITIES[name].version}`;
}
