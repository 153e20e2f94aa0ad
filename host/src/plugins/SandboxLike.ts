import type { Contract, Proxied } from '@worker-manager/plugin-sdk';
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
}

/** Builds a sandbox; injected so the composition root decides, and tests can count starts. */
export type SandboxFactory = (spec: SandboxSpec) => SandboxLike;
