import type { Contract, Proxied, WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { SandboxCall, SandboxOptions, SandboxStats, SandboxStatusChange } from '../sandbox/PluginSandbox.ts';

/** What the registry passes to the sandbox of one instance. */
export type SandboxSpec = SandboxOptions;
export type { SandboxCall, SandboxStatusChange };

/** The part of the sandbox the registry relies on; the real one is `sandbox/PluginSandbox.ts`. */
export interface SandboxLike {
  start(): Promise<void>;
  stop(options?: { timeoutMs?: number }): Promise<void>;
  proxy<C extends Contract>(): Proxied<C>;
  /** Restart and crash counters (the real sandbox has them; a test double may not). */
  stats?(): SandboxStats;
  /** Quarantines the instance for misbehaviour seen by the host (the real sandbox has it; a test double may not). */
  quarantine?(cause: WorkerManagerError): void;
}

/** Builds a sandbox; injected so the composition root decides, and tests can count starts. */
export type SandboxFactory = (spec: SandboxSpec) => SandboxLike;
