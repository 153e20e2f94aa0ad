import type { Static, TSchema } from 'typebox';
import type { CredentialProviderContract } from './contracts/credentialProvider.ts';
import type { Contract, HandlerOf } from './contracts/operation.ts';
import type { WorkerEvent } from './contracts/workerEvent.ts';
import type { WorkerProviderContract } from './contracts/workerProvider.ts';
import type { PluginKind, PluginMetadata } from './pluginMetadata.ts';

type HandlersOf<C extends Contract, Required extends keyof C['operations']> = {
  [K in Required]: HandlerOf<C['operations'][K]>;
} & {
  [K in Exclude<keyof C['operations'], Required>]?: HandlerOf<C['operations'][K]>;
};

/** Handlers of a provider plugin: lifecycle operations are required, the rest follow the declared capabilities. */
export type ProviderHandlers = HandlersOf<WorkerProviderContract, 'createWorker' | 'terminateWorker' | 'getWorkerStatus' | 'listWorkers'> & {
  /** Called once when the plugin thread shuts down. */
  close?(): Promise<void> | void;
};

/** Handlers of a credential plugin: reads are required, the rest follow the declared capabilities. */
export type CredentialHandlers = HandlersOf<CredentialProviderContract, 'getSecret' | 'listVersions' | 'describe'> & {
  close?(): Promise<void> | void;
};

/** Handlers for a plugin kind. */
export type HandlersFor<K extends PluginKind> = K extends 'provider' ? ProviderHandlers : CredentialHandlers;

/** Structured logging from plugin code; records reach the host's log with plugin and instance attached. */
export interface PluginLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Labels that mark a resource as owned by this host and instance; put them on everything you create. */
export interface OwnerLabels {
  'worker-manager/host': string;
  'worker-manager/instance': string;
}

/** What a plugin gets when one of its threads starts. */
export interface PluginContext<Config> {
  /** The instance config, already validated against the plugin's `configSchema`. */
  readonly config: Config;
  readonly instance: string;
  readonly hostId: string;
  /** A directory owned by this instance that survives restarts; the only place the plugin should write. */
  readonly stateDir: string;
  readonly owner: OwnerLabels;
  readonly logger: PluginLogger;
  /** Sends a lifecycle event to the host, which publishes it on the bus. */
  emit(event: WorkerEvent): void;
  /** Aborted when the thread is shutting down. */
  readonly signal: AbortSignal;
}

/** What a plugin author passes to {@link definePlugin}. */
export interface PluginSpec<K extends PluginKind, S extends TSchema> {
  id: string;
  /** Must equal the package.json version. */
  version: string;
  kind: K;
  /** Semver range of host API versions this plugin works with, e.g. `^1.0.0`. */
  hostApi: string;
  /** Capability name to the version implemented, e.g. `{ 'worker.exec': '1.0.0' }`. */
  capabilities: Record<string, string>;
  /** typebox (JSON) schema of the instance config. */
  configSchema: S;
  description?: string;
  /** Builds the handlers; runs once per plugin thread. */
  setup(context: PluginContext<Static<S>>): HandlersFor<K> | Promise<HandlersFor<K>>;
}

const kPlugin = Symbol.for('worker-manager.plugin');

/** A plugin definition, the default export of a plugin package. */
export interface PluginDefinition<K extends PluginKind = PluginKind, S extends TSchema = TSchema> extends PluginSpec<K, S> {
  readonly [kPlugin]: true;
}

/**
 * Declares a plugin as data plus a setup function. Export the result as the package's default export, and keep the
 * package.json `workerManager` block in sync with {@link pluginMetadataOf} (the conformance suite checks it).
 *
 * @example
 * export default definePlugin({ id: 'echo', version: '1.0.0', kind: 'provider', hostApi: '^2.0.0',
 *   capabilities: { 'worker.lifecycle': '2.0.0' }, configSchema: Type.Object({}), setup: (ctx) => handlers });
 */
export function definePlugin<K extends PluginKind, S extends TSchema>(spec: PluginSpec<K, S>): PluginDefinition<K, S> {
  return Object.freeze({ ...spec, [kPlugin]: true as const });
}

/** True when a module export is a plugin definition (from any copy of the SDK). */
export function isPluginDefinition(value: unknown): value is PluginDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kPlugin] === true;
}

/** The package.json `workerManager` block that describes a definition. */
export function pluginMetadataOf(def: PluginDefinition): PluginMetadata {
  const out: PluginMetadata = {
    id: def.id,
    kind: def.kind,
    hostApi: def.hostApi,
    capabilities: { ...def.capabilities },
    // Round-trip through JSON: the stored block is plain JSON Schema, with no typebox symbols.
    configSchema: JSON.parse(JSON.stringify(def.configSchema)) as Record<string, unknown>,
  };
  if (def.description !== undefined) out.description = def.description;
  return out;
}
