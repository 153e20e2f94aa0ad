import type { SecretMount, SecretRef } from '@worker-manager/plugin-sdk';

/** A secret ref as the broker records it; `onRotation` and `signal` say how its worker follows a rotation. */
export type ConsumerRef = SecretRef & { onRotation?: 'hot' | 'restart' | 'signal' | 'none'; signal?: string };

/** One worker's use of a secret (the broker's `SecretConsumer`). */
export interface RotationConsumer {
  workerId: string;
  /** Provider instance running the worker. */
  instance: string;
  tenant: string;
  ref: ConsumerRef;
}

/**
 * What the engine needs from the SecretBroker (host/src/secrets/SecretBroker.ts). Declared here, as a port, so the
 * engine depends on these methods only; the broker satisfies it structurally.
 */
export interface RotationBroker {
  credentialsFor(ref: { credentials?: string }): string;
  assertCanRead(tenant: string | undefined, credentials: string, name: string): void;
  resolve(req: { workerId: string; tenant?: string; refs: SecretRef[]; correlationId?: string }): Promise<SecretMount[]>;
  consumersOf(credentials: string, name: string): RotationConsumer[];
  invalidate(credentials: string, name: string): void;
  /** Tells `listener` of every value handed out with a lease (`leaseTtlMs`), so it can be renewed before it ends. */
  watchLeases?(listener: (credentials: string, name: string, leaseTtlMs: number) => void): void;
}

/** What the engine needs from the WorkerService to move workers onto a new version. */
export interface RotationWorkers {
  refreshSecrets(workerId: string, mounts: SecretMount[], opts: { signal?: string; correlationId?: string }): Promise<void>;
  restartWithSecrets(workerId: string, mounts: SecretMount[], opts: { correlationId?: string }): Promise<unknown>;
}
