import path from 'node:path';
import {
  isWorkerManagerError,
  toWorkerManagerError,
  type Contract,
  type CredentialProviderContract,
  type PluginKind,
  type Proxied,
  type WorkerEvent,
  type WorkerManagerError,
  type WorkerProviderContract,
} from '@worker-manager/plugin-sdk';
import semver from 'semver';
import { Compile } from 'typebox/compile';
import { collectSchemaErrors } from '../config/collectSchemaErrors.ts';
import { convertEnvScalars } from '../config/convertEnvScalars.ts';
import { formatIssue, noteEnvSources, schemaIssues } from '../config/formatIssues.ts';
import type { LoadedConfig } from '../config/loadConfig.ts';
import { effectiveIsolation, type InstanceEntry, type PluginEntry } from '../config/schema.ts';
import { hostError } from '../errors.ts';
import { applySchemaDefaults } from './applySchemaDefaults.ts';
import type { SandboxCall, SandboxFactory, SandboxLike, SandboxStatusChange } from './SandboxLike.ts';
import { negotiatePlugin, requireCapabilities, type Negotiated } from './negotiate.ts';
import { resolvePluginPackage, type ResolvedPackage } from './resolvePluginPackage.ts';

/** Where an instance is in its life. */
export type InstanceState = 'pending' | 'validated' | 'starting' | 'running' | 'restarting' | 'failed' | 'quarantined' | 'stopped';

/** One plugin entry after resolution and negotiation. */
export interface PluginRecord {
  name: string;
  entry: PluginEntry;
  pkg?: ResolvedPackage;
  negotiated?: Negotiated;
  error?: WorkerManagerError;
}

/** One instance, whatever happened to it. */
export interface InstanceRecord {
  name: string;
  entry: InstanceEntry;
  plugin: PluginRecord | undefined;
  state: InstanceState;
  error?: WorkerManagerError;
  sandbox?: SandboxLike;
  stateDir?: string;
}

/** A row of the startup report. */
export interface ReportRow {
  instance: string;
  plugin: string;
  package: string | null;
  version: string | null;
  kind: PluginKind | null;
  hostApi: string | null;
  isolation: string;
  capabilities: Record<string, string>;
  ignoredCapabilities: Array<{ capability: string; version: string; reason: string }>;
  state: InstanceState;
  default: boolean;
  error: { code: string; message: string } | null;
}

/** What the registry tells the rest of the host. */
export interface RegistryHooks {
  onWorkerEvent?(instance: string, event: WorkerEvent): void;
  onPluginStatus?(instance: string, plugin: { id: string; version: string }, change: SandboxStatusChange): void;
  onPluginLog?(instance: string, level: string, message: string, fields?: Record<string, unknown>): void;
  /** Every settled contract call (metrics); without it the sandboxes do not time calls. */
  onPluginCall?(instance: string, plugin: { id: string; version: string }, call: SandboxCall): void;
}

export interface RegistryOptions {
  loaded: LoadedConfig;
  hostId: string;
  stateDir: string;
  sandboxFactory: SandboxFactory;
  hooks?: RegistryHooks;
  /** Check everything that can be checked without plugin code, and start nothing (`wm config validate`). */
  validateOnly?: boolean;
}

/**
 * Turns the plugin and instance entries of the config into running sandboxes. Everything that can be checked
 * without running plugin code (package, metadata, version range, host API, capabilities, instance config) is checked
 * first; a failure marks only that plugin or instance as failed, unless its plugin says `onBootFailure: abort`.
 */
export class PluginRegistry {
  readonly #options: RegistryOptions;
  readonly #plugins = new Map<string, PluginRecord>();
  readonly #instances = new Map<string, InstanceRecord>();
  /** Entries that were rejected before they got a record (duplicates). */
  readonly #rejected: Array<{ kind: 'plugin' | 'instance'; name: string; error: WorkerManagerError }> = [];

  constructor(options: RegistryOptions) {
    this.#options = options;
  }

  /** Resolves, negotiates and starts everything. Throws HOST_ERR_BOOT_ABORTED only for `onBootFailure: abort`. */
  async boot(): Promise<ReportRow[]> {
    const { config } = this.#options.loaded;
    await Promise.all(
      config.plugins.map(async (entry, index) => {
        if (this.#plugins.has(entry.name)) {
          this.#reject('plugin', entry.name, hostError('HOST_ERR_DUPLICATE_PLUGIN', `${this.#where(`/plugins/${index}/name`)}plugin name '${entry.name}' is already used; this entry is ignored`, { details: { plugin: entry.name } }));
          return;
        }
        const record: PluginRecord = { name: entry.name, entry };
        this.#plugins.set(entry.name, record);
        await this.#preparePlugin(record, index);
      }),
    );

    const starts: Array<Promise<void>> = [];
    config.instances.forEach((entry, index) => {
      if (this.#instances.has(entry.name)) {
        this.#reject('instance', entry.name, hostError('HOST_ERR_DUPLICATE_INSTANCE', `${this.#where(`/instances/${index}/name`)}instance name '${entry.name}' is already used; this instance is not started`, { details: { instance: entry.name, plugin: entry.plugin } }));
        return;
      }
      const record: InstanceRecord = { name: entry.name, entry, plugin: this.#plugins.get(entry.plugin), state: 'pending' };
      this.#instances.set(entry.name, record);
      starts.push(this.#startInstance(record, index));
    });
    await Promise.all(starts);

    const fatal = [...this.#instances.values()].find((i) => i.state === 'failed' && i.plugin?.entry.onBootFailure === 'abort');
    const fatalPlugin = [...this.#plugins.values()].find((p) => p.error !== undefined && p.entry.onBootFailure === 'abort');
    const culprit = fatal?.error ?? fatalPlugin?.error;
    if (culprit !== undefined) {
      const name = fatal?.plugin?.name ?? fatalPlugin?.name ?? 'unknown';
      await this.stop({ timeoutMs: 2_000 });
      throw hostError('HOST_ERR_BOOT_ABORTED', `plugin '${name}' failed to start and has onBootFailure: abort: ${culprit.message}`, {
        cause: culprit,
        details: { plugin: name, ...(fatal === undefined ? {} : { instance: fatal.name }) },
      });
    }
    return this.report();
  }

  /** The startup report: every instance (and every plugin without one), negotiated versions and state. */
  report(): ReportRow[] {
    const rows: ReportRow[] = [];
    const used = new Set<string>();
    for (const inst of this.#instances.values()) {
      if (inst.plugin !== undefined) used.add(inst.plugin.name);
      rows.push(this.#row(inst.name, inst.entry.plugin, inst.plugin, inst.state, inst.error, inst.entry.default));
    }
    for (const plugin of this.#plugins.values()) {
      if (!used.has(plugin.name)) rows.push(this.#row('-', plugin.name, plugin, plugin.error === undefined ? 'stopped' : 'failed', plugin.error, false));
    }
    for (const r of this.#rejected) {
      rows.push(this.#row(r.kind === 'instance' ? r.name : '-', r.kind === 'plugin' ? r.name : '-', undefined, 'failed', r.error, false));
    }
    return rows;
  }

  /** Every plugin record (entries that got one), in config order. */
  plugins(): PluginRecord[] {
    return [...this.#plugins.values()];
  }

  /** Every instance record, in config order. */
  instances(): InstanceRecord[] {
    return [...this.#instances.values()];
  }

  /** Looks an instance up; unknown names are a client error. */
  instance(name: string): InstanceRecord {
    const rec = this.#instances.get(name);
    if (rec === undefined) throw hostError('HOST_ERR_INSTANCE_NOT_FOUND', `no instance named '${name}'`, { details: { instance: name } });
    return rec;
  }

  /** The typed proxy of a running instance of a given kind. */
  proxy<C extends Contract>(name: string, kind: PluginKind): Proxied<C> {
    const rec = this.instance(name);
    const plugin = rec.plugin;
    if (plugin?.pkg !== undefined && plugin.pkg.metadata.kind !== kind) {
      throw hostError('HOST_ERR_PLUGIN_KIND_MISMATCH', `instance '${name}' is a ${plugin.pkg.metadata.kind} plugin, not a ${kind} plugin`, {
        details: { instance: name, plugin: plugin.name, version: plugin.pkg.version },
      });
    }
    if (rec.sandbox === undefined || rec.state === 'failed' || rec.state === 'quarantined' || rec.state === 'stopped') {
      throw hostError('HOST_ERR_INSTANCE_UNAVAILABLE', `instance '${name}' is ${rec.state}${rec.error === undefined ? '' : `: ${rec.error.message}`}`, {
        details: { instance: name, plugin: plugin?.name, version: plugin?.pkg?.version ?? null, state: rec.state },
        ...(rec.error === undefined ? {} : { cause: rec.error }),
      });
    }
    return rec.sandbox.proxy<C>();
  }

  /**
   * Quarantines a running instance for misbehaviour the host saw (events about workers it does not own). The sandbox
   * reports the change through the usual status hook, so it is published and counted like a spent restart budget.
   */
  quarantine(name: string, cause: WorkerManagerError): void {
    this.instance(name).sandbox?.quarantine?.(cause);
  }

  /** Shortcut for provider instances. */
  provider(name: string): Proxied<WorkerProviderContract> {
    return this.proxy<WorkerProviderContract>(name, 'provider');
  }

  /** Shortcut for credentials instances. */
  credentials(name: string): Proxied<CredentialProviderContract> {
    return this.proxy<CredentialProviderContract>(name, 'credentials');
  }

  /** Name of the provider instance that takes workers naming none: the one marked default, else the only one. */
  defaultProviderName(): string | undefined {
    const providers = this.instances().filter((i) => i.plugin?.pkg?.metadata.kind === 'provider');
    return (providers.find((i) => i.entry.default) ?? (providers.length === 1 ? providers[0] : undefined))?.name;
  }

  /** Negotiated capabilities of an instance (empty when it did not negotiate). */
  capabilitiesOf(name: string): Record<string, string> {
    return this.instance(name).plugin?.negotiated?.capabilities ?? {};
  }

  /** Stops every sandbox, in reverse start order, draining in-flight calls up to the timeout. */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    const running = this.instances().filter((i) => i.sandbox !== undefined).reverse();
    await Promise.all(
      running.map(async (inst) => {
        await inst.sandbox?.stop(options);
        if (inst.state !== 'failed' && inst.state !== 'quarantined') inst.state = 'stopped';
      }),
    );
  }

  #where(pointer: string): string {
    const pos = this.#options.loaded.locate(pointer);
    return pos === undefined ? '' : `${pos.file}:${pos.line}:${pos.col}: `;
  }

  #reject(kind: 'plugin' | 'instance', name: string, error: WorkerManagerError): void {
    this.#rejected.push({ kind, name, error });
  }

  // Values that came from `${...}` are shown as written (LoadedConfig.show), never as interpolated: they may be secrets.
  async #preparePlugin(record: PluginRecord, index: number): Promise<void> {
    const { loaded } = this.#options;
    try {
      const packagePointer = `/plugins/${index}/package`;
      const pkg = await resolvePluginPackage(record.entry.package, loaded.dir, {
        plugin: record.name,
        shown: loaded.show(packagePointer, record.entry.package),
        where: this.#where(packagePointer),
      });
      record.pkg = pkg;
      const range = record.entry.version;
      if (!semver.satisfies(pkg.version, range, { includePrerelease: true })) {
        const rangePointer = `/plugins/${index}/version`;
        const shown = loaded.show(rangePointer, range);
        throw hostError('HOST_ERR_PLUGIN_VERSION_MISMATCH', `${this.#where(rangePointer)}plugin '${record.name}': config accepts ${shown}, installed ${pkg.name} is ${pkg.version}`, {
          details: { plugin: record.name, version: pkg.version, expected: shown, found: pkg.version },
        });
      }
      record.negotiated = negotiatePlugin(pkg.metadata, { plugin: record.name, version: pkg.version });
    } catch (error) {
      record.error = toWorkerManagerError(error);
    }
  }

  async #startInstance(inst: InstanceRecord, index: number): Promise<void> {
    const plugin = inst.plugin;
    try {
      if (plugin === undefined) {
        throw hostError('HOST_ERR_UNKNOWN_PLUGIN_REF', `${this.#where(`/instances/${index}/plugin`)}instance '${inst.name}' uses plugin '${inst.entry.plugin}', which no plugins: entry defines`, {
          details: { instance: inst.name, plugin: inst.entry.plugin },
        });
      }
      // The plugin's own error is the instance's: the report then shows the real reason and its code.
      if (plugin.error !== undefined) throw plugin.error;
      if (plugin.pkg === undefined || plugin.negotiated === undefined) {
        throw hostError('HOST_ERR_INSTANCE_UNAVAILABLE', `instance '${inst.name}': plugin '${plugin.name}' was not negotiated`, {
          details: { instance: inst.name, plugin: plugin.name },
        });
      }
      const { pkg, negotiated, entry: pluginEntry } = plugin;
      const who = { plugin: plugin.name, instance: inst.name, version: pkg.version };
      requireCapabilities(negotiated, inst.entry.requireCapabilities, who, {
        show: (capability, i) => this.#options.loaded.show(`/instances/${index}/requireCapabilities/${i}`, capability),
        where: (i) => this.#where(`/instances/${index}/requireCapabilities/${i}`),
      });
      const config = this.#validateInstanceConfig(inst, index, pkg);
      if (this.#options.validateOnly === true) {
        inst.state = 'validated';
        return;
      }
      inst.stateDir = path.join(this.#options.stateDir, 'instances', inst.name);
      const hooks = this.#options.hooks ?? {};
      const ids = { id: pkg.metadata.id, version: pkg.version };
      const sandbox = this.#options.sandboxFactory({
        pluginId: pkg.metadata.id,
        pluginVersion: pkg.version,
        kind: pkg.metadata.kind,
        instance: inst.name,
        hostId: this.#options.hostId,
        entry: pkg.entry,
        packageDir: pkg.dir,
        config,
        stateDir: inst.stateDir,
        isolation: effectiveIsolation(pluginEntry),
        env: pluginEntry.env,
        limits: pluginEntry.limits,
        egress: inst.entry.egress,
        methods: negotiated.methods,
        contract: negotiated.contract,
        metadata: pkg.metadata,
        onEvent: (event) => hooks.onWorkerEvent?.(inst.name, event),
        onLog: (level, message, fields) => hooks.onPluginLog?.(inst.name, level, message, fields),
        onStatus: (change) => {
          if (change.state === 'quarantined') inst.state = 'quarantined';
          else if (change.state === 'restarting') inst.state = 'restarting';
          else if (change.state === 'running' && inst.state === 'restarting') inst.state = 'running';
          hooks.onPluginStatus?.(inst.name, ids, change);
        },
        onCall: hooks.onPluginCall === undefined ? undefined : (call) => hooks.onPluginCall?.(inst.name, ids, call),
      });
      inst.sandbox = sandbox;
      inst.state = 'starting';
      await sandbox.start();
      inst.state = 'running';
    } catch (error) {
      inst.state = 'failed';
      inst.error = toWorkerManagerError(error);
      if (inst.sandbox !== undefined) await inst.sandbox.stop({ timeoutMs: 0 }).catch(() => {});
    }
  }

  #validateInstanceConfig(inst: InstanceRecord, index: number, pkg: ResolvedPackage): unknown {
    const schema = pkg.metadata.configSchema;
    let check;
    try {
      check = Compile(schema as never);
    } catch (cause) {
      throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${inst.entry.plugin}'@${pkg.version}: configSchema is not a usable JSON Schema`, {
        cause,
        details: { plugin: inst.entry.plugin, instance: inst.name, version: pkg.version },
      });
    }
    const base = `/instances/${index}/config`;
    const { loaded } = this.#options;
    // `${ENV}` scalars are strings after interpolation; convert them where the plugin's schema wants a number/boolean.
    const converted = convertEnvScalars(schema, structuredClone(inst.entry.config), base, loaded.envScalars);
    const config = applySchemaDefaults(schema, converted);
    if (check.Check(config)) return config;
    const issues = noteEnvSources(schemaIssues(collectSchemaErrors(check, config), base, loaded.locate, { value: config, schema }), loaded.fromEnv);
    throw hostError(
      'HOST_ERR_INSTANCE_CONFIG_INVALID',
      `instance '${inst.name}' (plugin '${inst.entry.plugin}'@${pkg.version}) has an invalid config:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      { details: { plugin: inst.entry.plugin, instance: inst.name, version: pkg.version, issues } },
    );
  }

  #row(instance: string, pluginName: string, plugin: PluginRecord | undefined, state: InstanceState, error: WorkerManagerError | undefined, isDefault: boolean): ReportRow {
    return {
      instance,
      plugin: pluginName,
      package: plugin?.pkg?.name ?? null,
      version: plugin?.pkg?.version ?? null,
      kind: plugin?.pkg?.metadata.kind ?? null,
      hostApi: plugin?.pkg?.metadata.hostApi ?? null,
      isolation: plugin === undefined ? '-' : effectiveIsolation(plugin.entry),
      capabilities: plugin?.negotiated?.capabilities ?? {},
      ignoredCapabilities: plugin?.negotiated?.ignored ?? [],
      state,
      default: isDefault,
      error: error === undefined ? null : { code: error.code, message: isWorkerManagerError(error) ? error.message : String(error) },
    };
  }
}
