import type { RotationRecord, SecretVersionEntry } from './apiSchemas.ts';

/** Who asks, and for which secret; the same fields the RotationEngine takes. */
export interface SecretRotationRequest {
  name: string;
  /** Credentials instance; the engine picks the default one when absent. */
  credentials?: string;
  /** Principal id of the caller (`anonymous` without authentication). */
  requester: string;
  tenant?: string;
  correlationId?: string;
}

/**
 * The part of the RotationEngine (host/src/secrets/rotation/RotationEngine.ts) the API calls, declared here so the
 * API depends on the design's methods, not on the engine's file. The engine checks the tenant itself; none of these
 * returns or logs a secret value.
 */
export interface SecretRotation {
  /** Metadata of each version; `failure` on a version a failed rotation created (it never becomes current again). */
  listVersions(req: { name: string; credentials?: string; tenant?: string }): Promise<SecretVersionEntry[]>;
  rotate(req: SecretRotationRequest & { trigger?: 'manual' | 'event' | 'time' }): Promise<RotationRecord>;
  rollback(req: SecretRotationRequest): Promise<RotationRecord>;
  /** The secret's rotation and rollback records, oldest first, with the retry state of unfinished ones. */
  rotations(req: { name: string; credentials?: string; tenant?: string }): Promise<RotationRecord[]>;
}
