/** What a capability is for, and which contract it belongs to. */
export interface CapabilityInfo {
  readonly contract: 'worker-provider' | 'credentials';
  readonly description: string;
  /** Required capabilities must be declared by every plugin of the contract. */
  readonly required: boolean;
}

/**
 * Every capability a plugin may declare, with the version the host speaks. A plugin declares the version it
 * implements (`worker.exec: 1.0.0`); the host accepts it when it satisfies `^<host version>` (same major).
 */
export const CAPABILITIES = {
  'worker.lifecycle': { contract: 'worker-provider', required: true, description: 'createWorker, terminateWorker, getWorkerStatus, listWorkers' },
  'worker.logs': { contract: 'worker-provider', required: false, description: 'getLogs without follow' },
  'worker.logs.follow': { contract: 'worker-provider', required: false, description: 'getLogs with follow: true' },
  'worker.exec': { contract: 'worker-provider', required: false, description: 'executeCommand' },
  'worker.pause': { contract: 'worker-provider', required: false, description: 'pauseWorker and resumeWorker' },
  'worker.restart': { contract: 'worker-provider', required: false, description: 'restartWorker' },
  'worker.portForward': { contract: 'worker-provider', required: false, description: 'portForward' },
  'worker.capacity': { contract: 'worker-provider', required: false, description: 'getCapacity' },
  'worker.events': { contract: 'worker-provider', required: false, description: 'the plugin emits WorkerEvents on its own (stream_worker_events)' },
  'worker.resources.memory': { contract: 'worker-provider', required: false, description: 'enforces resources.memoryMiB' },
  'worker.resources.cpu': { contract: 'worker-provider', required: false, description: 'enforces resources.cpuMillicores' },
  'worker.resources.gpu': { contract: 'worker-provider', required: false, description: 'honours resources.gpu > 0' },
  'worker.image': { contract: 'worker-provider', required: false, description: 'runs spec.image' },
  'worker.ports': { contract: 'worker-provider', required: false, description: 'publishes spec.ports' },
  'worker.volumes': { contract: 'worker-provider', required: false, description: 'mounts spec.volumes' },
  'worker.network.isolation': { contract: 'worker-provider', required: false, description: 'honours network isolation Strict and Complete' },
  'worker.healthCheck': { contract: 'worker-provider', required: false, description: 'runs spec.healthCheck' },
  'worker.secrets.env': { contract: 'worker-provider', required: false, description: 'delivers secret mounts as environment variables' },
  'worker.secrets.file': { contract: 'worker-provider', required: false, description: 'delivers secret mounts as files' },
  'worker.secrets.refresh': {
    contract: 'worker-provider',
    required: false,
    description: 'refreshSecrets: replaces file secrets of a running worker atomically and signals it; restartWorker with fresh secrets',
  },
  'secret.read': { contract: 'credentials', required: true, description: 'getSecret, listVersions, describe' },
  'secret.write': { contract: 'credentials', required: false, description: 'putSecret' },
  'secret.rotate': { contract: 'credentials', required: false, description: 'createPendingVersion, testVersion, promoteVersion' },
  'secret.revoke': { contract: 'credentials', required: false, description: 'revokeVersion' },
} as const satisfies Record<string, CapabilityInfo>;

/** A capability name. */
export type CapabilityName = keyof typeof CAPABILITIES;

/** The version of every capability this SDK (and a host built on it) speaks. */
export const CAPABILITY_VERSION = '1.0.0';
