import path from 'node:path';
import { asFunction, asValue, createContainer, InjectionMode, type AwilixContainer } from 'awilix';
import { toWorkerManagerError } from '@worker-manager/plugin-sdk';
import { startApiServer } from './api/startApiServer.ts';
import type { EventBus } from './bus/EventBus.ts';
import { createEvent } from './bus/createEvent.ts';
import { workerCommandExecutor } from './bus/commands/dispatchWorkerCommand.ts';
import { guardedCommandExecutor } from './bus/commands/guardedCommandExecutor.ts';
import { createEventBus } from './bus/createEventBus.ts';
import { subjectsFor, type Subjects } from './bus/subjects.ts';
import type { LoadedConfig } from './config/loadConfig.ts';
import { hostError } from './errors.ts';
import { defaultHostId } from './defaultHostId.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createMetrics, type HostMetrics } from './observability/metrics.ts';
import { PluginRegistry, type RegistryHooks, type ReportRow } from './plugins/PluginRegistry.ts';
import type { SandboxFactory } from './plugins/SandboxLike.ts';
import { ProcessSandbox } from './sandbox/process/ProcessSandbox.ts';
import { PluginSandbox } from './sandbox/PluginSandbox.ts';
import { StateDirLock } from './StateDirLock.ts';
import { openWorkerStore } from './workers/ledger/openWorkerStore.ts';
import type { WorkerStore } from './workers/ledger/WorkerStore.ts';
import { WorkerLedger } from './workers/WorkerLedger.ts';
import { RotationEngine } from './secrets/rotation/RotationEngine.ts';
import { SecretBroker } from './secrets/SecretBroker.ts';
import { AuditLog } from './security/audit/AuditLog.ts';
import type { AuditSink } from './security/audit/AuditSink.ts';
import { openAuditSigning } from './security/audit/openAuditSigning.ts';
import { AccessGuard, workerLookupFrom } from './security/authn/AccessGuard.ts';
import { assertSafeBind, createAuthenticator, hostPrincipal } from './security/authn/createAuthenticator.ts';
import { adminTokenPath } from './security/authn/LocalAdminAuthenticator.ts';
import { removeApiEndpoint, writeApiEndpoint } from './api/apiEndpointFile.ts';
import type { Authorizer } from './security/authz/Authorizer.ts';
import { createAuthorizer } from './security/authz/createAuthorizer.ts';
import { applyShutdownPolicy } from './workers/applyShutdownPolicy.ts';
import { WorkerService } from './workers/WorkerService.ts';

/** Everything the container holds; the composition root is the only code that reaches into it. */
interface Cradle {
  loaded: LoadedConfig;
  hostId: string;
  stateDir: string;
  logger: Logger;
  metrics: HostMetrics;
  subjects: Subjects;
  bus: EventBus;
  sandboxFactory: SandboxFactory;
  hooks: RegistryHooks;
  registry: PluginRegistry;
  secrets: SecretBroker;
  workers: WorkerService;
  /** The worker ledger (its SQLite store opened by start). */
  ledger: WorkerLedger;
  rotation: RotationEngine;
  /** The audit trail (the hash-chained log in the state dir, unless HostOptions.audit replaces it). */
  audit: AuditSink;
  /** Decides every API request and bus command (security.authorization, unless HostOptions.authorizer replaces it). */
  authorizer: Authorizer;
}

/** Overrides for tests and embedding. */
export interface HostOptions {
  loaded: LoadedConfig;
  logger?: Logger;
  bus?: EventBus;
  sandboxFactory?: SandboxFactory;
  /** Metrics to record into (their own prom-client registry); a fresh set when absent. */
  metrics?: HostMetrics;
  /** Decides what API requests and bus commands may do; when absent, the one `security.authorization` configures. */
  authorizer?: Authorizer;
  /** Receives every authorization decision and secret operation; when absent, the audit log in the state dir. */
  audit?: AuditSink;
  /** Where worker records go; when absent, the SQLite ledger in the state dir (`ledger.file`). */
  workerStore?: WorkerStore;
}

export { defaultHostId } from './defaultHostId.ts';

type ShutdownHook = { name: string; run: (timeoutMs: number) => Promise<void> };

/**
 * The host process: composition root plus lifecycle. `start()` and `stop()` are idempotent; `stop()` runs the
 * shutdown hooks last-registered-first, so what started last (plugins) stops first and the bus drains last.
 */
export class Host {
  readonly #container: AwilixContainer<Cradle>;
  readonly #shutdown: ShutdownHook[] = [];
  #starting: Promise<ReportRow[]> | undefined;
  #apiUrl: string | undefined;
  #stopping: Promise<void> | undefined;
  #guard: Promise<AccessGuard> | undefined;
  readonly #workerStore: WorkerStore | undefined;

  constructor(options: HostOptions) {
    this.#workerStore = options.workerStore;
    const { config } = options.loaded;
    const hostId = config.host.id ?? defaultHostId();
    this.#container = createContainer<Cradle>({ injectionMode: InjectionMode.PROXY, strict: true });
    this.#container.register({
      loaded: asValue(options.loaded),
      hostId: asValue(hostId),
      stateDir: asValue(path.resolve(options.loaded.dir, config.host.stateDir)),
      logger: asValue(options.logger ?? createLogger({ level: config.host.logLevel, hostId })),
      metrics: asValue(options.metrics ?? createMetrics({ secretNameLabels: config.observability.secretNameLabels })),
      subjects: asValue(subjectsFor(config.bus.subjectPrefix)),
      // Every publisher gets the timed bus, so event_publish_latency_ms covers them all whatever the adapter.
      bus: asFunction((c: Cradle) => c.metrics.instrumentBus(options.bus ?? createEventBus({ settings: config.bus, configDir: c.loaded.dir, stateDir: c.stateDir, hostId: c.hostId, subjects: c.subjects, logger: c.logger }))).singleton(),
      // Restricted instances run out of process, confined by bubblewrap; trusted ones in threads of this process.
      sandboxFactory: asValue<SandboxFactory>(options.sandboxFactory ?? ((spec) => (spec.isolation === 'restricted' ? new ProcessSandbox(spec) : new PluginSandbox(spec)))),
      hooks: asFunction((cradle: Cradle) => this.#registryHooks(cradle)).singleton(),
      registry: asFunction((c: Cradle) => new PluginRegistry({ loaded: c.loaded, hostId: c.hostId, stateDir: c.stateDir, sandboxFactory: c.sandboxFactory, hooks: c.hooks })).singleton(),
      secrets: asFunction((c: Cradle) => new SecretBroker({
        registry: c.registry, settings: c.loaded.config.secrets, stateDir: c.stateDir, logger: c.logger, bus: c.bus, subjects: c.subjects, hostId: c.hostId,
        observer: c.metrics.observer, audit: c.audit,
      })).singleton(),
      workers: asFunction((c: Cradle) => new WorkerService({
        registry: c.registry, bus: c.bus, subjects: c.subjects, hostId: c.hostId, logger: c.logger, secrets: c.secrets, observer: c.metrics.observer, audit: c.audit,
        ledger: c.ledger, reconcileObserver: c.metrics.reconcileObserver,
        startTimeoutMs: (instance) => c.loaded.config.instances.find((i) => i.name === instance)?.workerStartTimeoutMs ?? c.loaded.config.host.workerStartTimeoutMs,
      })).singleton(),
      // Its store is opened by start, once the state dir is locked.
      ledger: asFunction((c: Cradle) => new WorkerLedger({
        settings: c.loaded.config.ledger, logger: c.logger, onIllegalTransition: (instance, from, to) => c.metrics.illegalTransition(instance, from, to),
      })).singleton(),
      rotation: asFunction((c: Cradle) => new RotationEngine({
        registry: c.registry, bus: c.bus, subjects: c.subjects, hostId: c.hostId, stateDir: c.stateDir, logger: c.logger, broker: c.secrets, workers: c.workers,
        settings: c.loaded.config.secrets.rotation, audit: c.audit, observer: c.metrics.observer,
      })).singleton(),
      audit: asFunction((c: Cradle) => options.audit ?? new AuditLog({
        stateDir: c.stateDir, logger: c.logger, bus: c.bus, subjects: c.subjects, hostId: c.hostId,
        signing: openAuditSigning({ settings: c.loaded.config.security.audit, configDir: c.loaded.dir, stateDir: c.stateDir, bus: c.bus, subjects: c.subjects, hostId: c.hostId, logger: c.logger }),
      })).singleton(),
      authorizer: asFunction((c: Cradle) => options.authorizer ?? createAuthorizer(c.loaded.config.security.authorization, { logger: c.logger, configDir: c.loaded.dir })).singleton(),
    });
  }

  get hostId(): string {
    return this.#container.cradle.hostId;
  }
  get logger(): Logger {
    return this.#container.cradle.logger;
  }
  get bus(): EventBus {
    return this.#container.cradle.bus;
  }
  get subjects(): Subjects {
    return this.#container.cradle.subjects;
  }
  get registry(): PluginRegistry {
    return this.#container.cradle.registry;
  }
  get workers(): WorkerService {
    return this.#container.cradle.workers;
  }
  /** The worker ledger: one durable record per worker (open once the host has started). */
  get ledger(): WorkerLedger {
    return this.#container.cradle.ledger;
  }
  /** The secret broker: resolves secret refs for workers, tenant checks, consumers of each secret. */
  get secrets(): SecretBroker {
    return this.#container.cradle.secrets;
  }
  get metrics(): HostMetrics {
    return this.#container.cradle.metrics;
  }
  /** The audit trail every authorization decision and secret operation is recorded in. */
  get audit(): AuditSink {
    return this.#container.cradle.audit;
  }
  /** The authorizer of API requests and bus commands. */
  get authorizer(): Authorizer {
    return this.#container.cradle.authorizer;
  }
  /** Secret rotation: rotate now, roll back, list versions, history. */
  get rotation(): RotationEngine {
    return this.#container.cradle.rotation;
  }
  /** Base URL of the REST API once started with `api.enabled`; undefined otherwise. */
  get apiUrl(): string | undefined {
    return this.#apiUrl;
  }

  /** Starts bus, plugins and services; resolves with the startup report. */
  start(): Promise<ReportRow[]> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  /** Drains in-flight calls up to `timeoutMs` (config default), then stops everything. Safe to call twice. */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stop(options.timeoutMs ?? this.#container.cradle.loaded.config.host.shutdownTimeoutMs);
    return this.#stopping;
  }

  /** Registers work to do at stop; hooks run in reverse registration order. */
  onShutdown(name: string, run: (timeoutMs: number) => Promise<void>): void {
    this.#shutdown.push({ name, run });
  }

  async #start(): Promise<ReportRow[]> {
    const { config, show } = this.#container.cradle.loaded;
    // Before anything starts: a local-token API on a public address must not exist even briefly.
    if (config.api.enabled) assertSafeBind(config.api.host, config.security.authentication, show('/api/host', config.api.host));
    // Before anything is written to the state dir (or a service that writes there is built): a second host on the
    // same dir stops here, leaving the running host's admin token, journals and logs alone.
    const lock = await StateDirLock.acquire(this.#container.cradle.stateDir, { hostId: this.hostId });
    // Registered first, so it is released last, once everything that writes to the dir has stopped.
    this.onShutdown('state dir lock', () => lock.release());
    const { bus, registry, workers, logger, metrics } = this.#container.cradle;
    // The ledger's store is attached below; the gauge reads it at scrape time.
    metrics.watch({ bus, registry, workers: { countByPhase: async () => this.#container.cradle.ledger.store.countByPhase() } });
    await bus.start();
    this.onShutdown('bus', () => bus.stop());
    const { audit } = this.#container.cradle;
    // Registered before plugins, so it closes after everything that records (API, rotation, plugins) has stopped.
    if (audit instanceof AuditLog) this.onShutdown('audit', () => audit.stop());
    const { ledger } = this.#container.cradle;
    // Registered before plugins, so it closes after everything that records worker state (plugins, rotation, API).
    this.onShutdown('ledger', () => ledger.stop());
    this.onShutdown('plugins', (timeoutMs) => registry.stop({ timeoutMs }));
    try {
      ledger.attach(this.#workerStore ?? (await openWorkerStore(path.resolve(this.#container.cradle.stateDir, config.ledger.file))));
      if (audit instanceof AuditLog) await audit.start();
      // Before any plugin runs: a policy set that does not validate stops start-up here.
      const { authorizer } = this.#container.cradle;
      await authorizer.start();
      this.onShutdown('authz', () => authorizer.stop());
      const report = await registry.boot();
      // After the registry (it checks the credentials instances), before workers (they prune its consumer table).
      await this.#container.cradle.secrets.start();
      await workers.start();
      // Providers without events are asked for their workers' states, and every provider is reconciled with the
      // ledger for what an event missed; stopped before plugins drain.
      workers.startReconciling({ pollMs: config.ledger.pollIntervalMs, reconcileMs: config.ledger.reconcileIntervalMs });
      this.onShutdown('worker reconciliation', () => workers.stopReconciling());
      // Deadlines and start timeouts stop before polling and plugins do; the next start arms them again.
      this.onShutdown('worker lifecycle', () => workers.stopLifecycle());
      await ledger.purge();
      ledger.startPurging();
      const { rotation } = this.#container.cradle;
      // After plugins (and the broker), so recovery can drive them; stopped before plugins drain.
      await rotation.start();
      this.onShutdown('rotation', (timeoutMs) => rotation.stop({ timeoutMs }));
      if (this.#container.cradle.loaded.config.bus.serveCommands === true) {
        if (bus.serveCommands === undefined) throw hostError('HOST_ERR_CONFIG_INVALID', `the ${bus.adapter} bus cannot serve commands (bus.serveCommands needs adapter jetstream)`);
        const commands = bus.serveCommands(guardedCommandExecutor(workerCommandExecutor(workers), {
          guard: await this.#accessGuard(),
          serviceIdentity: config.security.authentication.serviceIdentity.commands ? hostPrincipal(config.security.authentication.serviceIdentity, this.hostId) : undefined,
        }));
        await commands.ready;
        // Registered last, so it stops first: no new command is taken while plugins drain.
        this.onShutdown('commands', () => commands.close());
      }
      if (this.#container.cradle.loaded.config.api.enabled) {
        const api = await startApiServer(this.#container.cradle.loaded.config, {
          workers, registry, logger, metrics, bus, subjects: this.#container.cradle.subjects, rotation: this.#container.cradle.rotation,
          // /metrics: security.authentication.protectMetrics, else protected outside loopback (startApiServer decides).
          auth: { guard: await this.#accessGuard() },
        }, show);
        this.#apiUrl = api.url;
        const { stateDir } = this.#container.cradle;
        // For `wm` on this machine: where the API is and which file holds the token, so it needs no flags.
        await writeApiEndpoint(stateDir, { url: api.url, ...(this.adminTokenFile === undefined ? {} : { tokenFile: this.adminTokenFile }), pid: process.pid });
        // Registered after plugins and commands, so it stops first: no request reaches a draining plugin.
        this.onShutdown('api', async (timeoutMs) => {
          await removeApiEndpoint(stateDir);
          await api.close(timeoutMs);
        });
        logger.info({ url: api.url }, 'api listening');
      }
      const { lifecycle } = workers;
      // Registered last, so it runs first at stop: a drain needs the API (to refuse creates with their code, and to
      // serve reads and terminates meanwhile), the bus and the plugins.
      if (lifecycle !== undefined) this.onShutdown('workers (host.onShutdown)', () => applyShutdownPolicy(lifecycle, config.host, logger));
      logger.info({ instances: report.map((r) => ({ instance: r.instance, plugin: r.plugin, version: r.version, state: r.state, error: r.error?.code ?? null })) }, 'host started');
      return report;
    } catch (error) {
      // Not stop(): it waits for this very start to settle, which would deadlock.
      this.#stopping ??= this.#stop(0, false);
      await this.#stopping.catch(() => undefined);
      throw error;
    }
  }

  async #stop(timeoutMs: number, waitForStart = true): Promise<void> {
    // Stop waits for a start in progress, so nothing it starts is left running.
    if (waitForStart) await this.#starting?.catch(() => undefined);
    const errors: unknown[] = [];
    for (const hook of [...this.#shutdown].reverse()) {
      try {
        await hook.run(timeoutMs);
      } catch (error) {
        errors.push(error);
        this.logger.error({ hook: hook.name, err: toWorkerManagerError(error).toJSON() }, 'shutdown hook failed');
      }
    }
    this.logger.flush?.();
    if (errors.length > 0) {
      throw hostError('HOST_ERR_SHUTDOWN_TIMEOUT', `${errors.length} shutdown hook(s) failed`, { cause: errors[0] });
    }
  }

  /** Where the local admin token is written (authentication mode local); undefined in oidc mode. */
  get adminTokenFile(): string | undefined {
    const { loaded, stateDir } = this.#container.cradle;
    return loaded.config.security.authentication.mode === 'local' ? adminTokenPath(stateDir) : undefined;
  }

  /** The one authenticate + authorize + audit path of the API and the bus commands, started once. */
  #accessGuard(): Promise<AccessGuard> {
    this.#guard ??= (async () => {
      const { loaded, stateDir, logger, workers, secrets } = this.#container.cradle;
      const authenticator = createAuthenticator(loaded.config.security.authentication, { stateDir, logger });
      await authenticator.start();
      this.onShutdown('authn', () => authenticator.stop());
      // The authorizer and the audit log were started by #start, before any plugin.
      const { authorizer, audit } = this.#container.cradle;
      return new AccessGuard({ authenticator, authorizer, audit, workers: workerLookupFrom(workers), secrets, logger });
    })();
    return this.#guard;
  }

  #registryHooks(cradle: Cradle): RegistryHooks {
    const publish = (name: 'pluginCrashed' | 'pluginQuarantined', data: Record<string, unknown>): void => {
      cradle.bus.publish(createEvent(cradle.subjects, cradle.hostId, name, data)).catch(() => undefined);
    };
    return {
      // Resolved lazily: the registry is built before the worker service that consumes its events.
      onWorkerEvent: (instance, event) => {
        if (this.#container.cradle.workers.onProviderEvent(instance, event) === 'foreign') cradle.metrics.foreignEvent(instance);
        else cradle.metrics.workerEvent(instance, event);
      },
      onPluginCall: (instance, plugin, call) => cradle.metrics.pluginCall(instance, plugin, call),
      onPluginLog: (instance, level, message, fields) => {
        const log = cradle.logger.child({ instance, source: 'plugin' });
        const fn = level === 'error' ? log.error : level === 'warn' ? log.warn : level === 'debug' ? log.debug : log.info;
        fn.call(log, fields ?? {}, message);
      },
      onPluginStatus: (instance, plugin, change) => {
        cradle.metrics.pluginStatus(instance, plugin, change);
        const data = { instance, plugin: plugin.id, version: plugin.version, state: change.state, reason: change.reason ?? null, code: change.code ?? null };
        if (change.state === 'quarantined') {
          cradle.logger.error(data, 'plugin instance quarantined');
          publish('pluginQuarantined', data);
        } else if (change.state === 'crashed' || change.state === 'restarting') {
          cradle.logger.warn(data, 'plugin instance crashed');
          if (change.state === 'crashed') publish('pluginCrashed', data);
        }
      },
    };
  }
}
