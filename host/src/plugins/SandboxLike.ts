import type { CallOptions, Contract, Proxied, WorkerEvent } from '@worker-manager/plugin-sdk';
import type { PluginLimits } from '../config/schema.ts';
import type { Static } from 'typebox';

/** A change of a sandbox's health, reported to the registry (which publishes plugin.crashed / quarantined). */
export interface SandboxStatusChange {
  state: 'running' | 'restarting' | 'quarantined' | 'crashed' | string;
  reason?: string;
  code?: string;
}

/** What the registry passes to the sandbox of one instance. */
export interface SandboxSpec {
  pluginId: string;
  pluginVersion: string;
  kind: 'provider' | 'credentials';
  instance: string;
  hostId: string;
  entry: string;
  packageDir: string;
  config: unknown;
  stateDir: string;
  isolation: 'trusted' | 'restricted';
  env: Record<string, string>;
  limits: Static<typeof PluginLimits>;
  methods: readonly string[];
  contract: Contract;
  onEvent?(event: WorkerEvent): void;
  onLog?(level: string, message: string, fields?: Record<string, unknown>): void;
  onStatus?(change: SandboxStatusChange): void;
}

/** The part of the sandbox the registry relies on; the real one is `sandbox/PluginSandbox.ts`. */
export interface SandboxLike {
  start(): Promise<void>;
  stop(options?: { timeoutMs?: number }): Promise<void>;
  call(method: string, params: unknown, options?: CallOptions): Promise<unknown>;
  proxy<C extends Contract>(): Proxied<C>;
}

/** Builds a sandbox; injected so the composition root decides, and tests can count starts. */
export type SandboxFactory = (spec: SandboxSpec) => SandboxLike;
