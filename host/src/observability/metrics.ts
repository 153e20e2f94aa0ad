import type { WorkerEvent } from '@worker-manager/plugin-sdk';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BusStats, EventBus } from '../bus/EventBus.ts';
import type { InstanceRecord } from '../plugins/PluginRegistry.ts';
import type { SandboxCall, SandboxStatusChange } from '../plugins/SandboxLike.ts';
import { timePublishes } from './metricsBus.ts';
import { LabelBudget, reasonFamily } from './metricsLabels.ts';
import type { OperationObserver, OperationRecord } from './OperationObserver.ts';
import type { ReconcileObserver } from '../workers/ReconcileLoop.ts';
import { LEDGER_PHASES } from '../workers/ledger/workerStateMachine.ts';
import type { PhaseCount } from '../workers/ledger/WorkerStore.ts';

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also export prom-client's default process metrics (CPU, memory, heap, event loop lag, GC). Default true. */
  processMetrics?: boolean;
  /** Distinct values a label keeps before it reports `other`. Default 100. */
  maxLabelValues?: number;
  /**
   * Label the rotation series with `secret_name` (`observability.secretNameLabels`). Default false: they carry the
   * credentials instance only, since whoever may scrape `/metrics` need not learn which secrets exist.
   */
  secretNameLabels?: boolean;
}

/** Where the scrape-time gauges read from; given once the host has built them. */
export interface MetricsSources {
  bus?: { stats(): BusStats };
  registry?: { instances(): InstanceRecord[] };
  /** The worker ledger's counts, for `wm_workers`. */
  workers?: { countByPhase(): Promise<PhaseCount[]> };
}

/** A plugin as the registry hooks name it. */
export interface PluginIds {
  id: string;
  version: string;
}

/**
 * The host's Prometheus metrics: the catalog of seed 000 table 4 plus plugin health and the outbox, in a registry of
 * their own (never prom-client's global one, so two hosts in one process, as in tests, do not collide).
 */
export interface HostMetrics {
  readonly registry: Registry;
  /** Content type of {@link render}'s text (Prometheus exposition format 0.0.4). */
  readonly contentType: string;
  render(): Promise<string>;
  /** Feeds the worker and secret operation series; give it to WorkerService and RotationEngine. */
  readonly observer: OperationObserver;
  /** Registry hook: restarts, crashes and quarantine of plugin instances. */
  pluginStatus(instance: string, plugin: PluginIds, change: SandboxStatusChange): void;
  /** Registry hook: one settled contract call (latency by plugin and method, secret mounts delivered). */
  pluginCall(instance: string, plugin: PluginIds, call: SandboxCall): void;
  /** Registry hook: a provider's worker event (failures, health check failures). */
  workerEvent(instance: string, event: WorkerEvent): void;
  /** A provider event about a worker its instance does not own, dropped by the worker service. */
  foreignEvent(instance: string): void;
  /** A state change a provider reported that the worker state machine refused. */
  illegalTransition(instance: string, from: string, to: string): void;
  /** What the periodic reconciliation of the ledger with each provider found; give it to WorkerService. */
  readonly reconcileObserver: ReconcileObserver;
  /** The bus with every publish timed into `event_publish_latency_ms`. */
  instrumentBus(bus: EventBus): EventBus;
  /** Sets what the scrape-time gauges (outbox depth, plugin state) read. */
  watch(sources: MetricsSources): void;
}

// Bucket bounds, in milliseconds. Each histogram's bounds include the seed's targets (table 15) as exact edges, so
// "is p95 under target" is a bucket count, not an interpolation.
/**
 * Create to Running: a local process is Running in 10-50 ms, a container in 0.2-3 s (target p95 < 3 s), a pod in
 * seconds (target p95 < 10 s, image pulls beyond). 14 buckets cover the three providers without a per-provider set.
 */
const CREATE_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000];
/** Terminate and confirm cleanup: milliseconds for a process, up to the grace period for the rest (target p95 < 5 s). */
const TERMINATE_BUCKETS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000];
/** A whole rotation (fetch, write, refresh every consumer, promote): target p95 < 2 s; minutes when restarts are needed. */
const ROTATION_BUCKETS = [10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 120_000];
/**
 * A publish: tens of microseconds on the memory bus, about 0.2 ms acknowledged by JetStream, an fsync when it lands in
 * the outbox (target p95 < 200 ms). Sub-millisecond buckets, or every healthy publish would sit in the first one.
 */
const PUBLISH_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 200, 500, 1_000];
/**
 * A call into a plugin thread: about 0.07 ms of transport, then whatever the plugin does, up to the call timeout
 * (30 s by default). Half-decade steps keep it to 12 buckets, since this one is per instance and method.
 */
/** One instance's reconciliation, in seconds: a listing and a ledger scan, milliseconds to seconds (10,000 workers: target <= 5 s). */
const RECONCILE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const CALL_BUCKETS = [0.1, 0.5, 1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 30_000];

/** Provider operations that deliver secret material to a worker. */
const SECRET_DELIVERY = new Set(['createWorker', 'restartWorker', 'refreshSecrets']);

/** Builds the metrics; the host wires them (`metrics` in its container). */
export function createMetrics(options: MetricsOptions = {}): HostMetrics {
  const registry = new Registry();
  const budget = new LabelBudget(options.maxLabelValues ?? 100);
  const registers = [registry];
  let sources: MetricsSources = {};

  // Plugin series say `plugin_instance`, not `instance`: Prometheus sets `instance` to the scrape target and would
  // rename ours to `exported_instance`.
  // Catalog labels the host cannot know (region, namespace, failure_domain) or that are unbounded (image, worker_id,
  // version) are left out: a label with one value per worker would make one series per worker.
  const createLatency = new Histogram({
    name: 'worker_create_latency_ms', help: 'Time from createWorker to the worker Running, successful creates only (ms).',
    labelNames: ['provider'] as const, buckets: CREATE_BUCKETS, registers,
  });
  const terminateLatency = new Histogram({
    name: 'worker_terminate_latency_ms', help: 'Time to terminate a worker and confirm its cleanup, successful terminates only (ms).',
    labelNames: ['provider'] as const, buckets: TERMINATE_BUCKETS, registers,
  });
  const healthCheckFailures = new Counter({
    name: 'health_check_failures_total', help: 'Workers a provider reported as failed by their health check (reason Unhealthy).',
    labelNames: ['provider'] as const, registers,
  });
  const workerFailures = new Counter({
    name: 'worker_failures_total', help: 'Workers that ended Failed, by reason family (ExitCode, Signal, OutOfMemory, Unhealthy, ...).',
    labelNames: ['provider', 'reason'] as const, registers,
  });
  // A secret's name says what it protects (`prod-db-root`): it is a label only when the operator asked for it.
  const secretNameLabels = options.secretNameLabels === true;
  const rotationSuccess = new Counter({
    name: 'rotation_success_total', help: 'Completed secret rotations.',
    labelNames: secretNameLabels ? ['secret_name', 'provider', 'strategy'] : ['provider', 'strategy'], registers,
  });
  const rotationLatency = new Histogram({
    name: 'rotation_latency_ms', help: 'Total latency of completed secret rotations (ms).',
    labelNames: secretNameLabels ? ['secret_name', 'provider'] : ['provider'], buckets: ROTATION_BUCKETS, registers,
  });
  const operations = new Counter({
    name: 'provider_operations_total', help: 'Worker and secret operations the host ran, by provider instance and result.',
    labelNames: ['provider', 'operation', 'result'] as const, registers,
  });
  const operationErrors = new Counter({
    name: 'provider_operations_errors_total', help: 'Failed worker and secret operations, by error category and stable code.',
    labelNames: ['provider', 'operation', 'error_category', 'error_code'] as const, registers,
  });
  const publishLatency = new Histogram({
    name: 'event_publish_latency_ms', help: 'Time until the bus accepted an event (acknowledged, or kept in the outbox) (ms).',
    labelNames: ['subject', 'status'] as const, buckets: PUBLISH_BUCKETS, registers,
  });
  const secretsMounts = new Counter({
    name: 'secrets_mounts_total', help: 'Secret mounts delivered to workers (create, restart with secrets, hot refresh), by strategy.',
    labelNames: ['provider', 'mount_strategy'] as const, registers,
  });
  const pluginRestarts = new Counter({
    name: 'plugin_restarts_total', help: 'Restarts of a plugin instance after a fault.',
    labelNames: ['plugin_instance', 'plugin'] as const, registers,
  });
  const reconcileDuration = new Histogram({
    name: 'worker_reconcile_duration_seconds', help: 'Time to compare one provider instance\'s listing with the ledger and apply what differed (s).',
    labelNames: ['provider'] as const, buckets: RECONCILE_BUCKETS, registers,
  });
  const drift = new Counter({
    name: 'worker_drift_total', help: 'What the periodic reconciliation found the ledger had missed: state (a missed state change), lost (a worker its provider no longer has), orphan (a running worker with no record).',
    labelNames: ['provider', 'kind'] as const, registers,
  });
  const orphans = new Counter({
    name: 'worker_orphans_total', help: 'Running workers with no record found by the periodic reconciliation, by what the instance\'s orphans policy did.',
    labelNames: ['provider', 'action'] as const, registers,
  });
  const foreignEvents = new Counter({
    name: 'plugin_foreign_events_total', help: 'Provider events about a worker the emitting instance does not own, dropped (three in a row quarantine it).',
    labelNames: ['plugin_instance'] as const, registers,
  });
  const illegalTransitions = new Counter({
    name: 'worker_illegal_transitions_total', help: 'Worker state changes reported by a provider that the state machine refused (not applied), by instance and phases.',
    labelNames: ['provider', 'from', 'to'] as const, registers,
  });
  const pluginCrashes = new Counter({
    name: 'plugin_crashes_total', help: 'Faults of a plugin instance (crash, oom, hang, timeout, boot).',
    labelNames: ['plugin_instance', 'plugin', 'reason'] as const, registers,
  });
  const quarantined = new Gauge({
    name: 'plugin_quarantined', help: '1 while a plugin instance is quarantined (restart budget spent), else 0.',
    labelNames: ['plugin_instance', 'plugin'] as const, registers,
    collect() {
      for (const inst of sources.registry?.instances() ?? []) this.set(instanceLabels(inst), inst.state === 'quarantined' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'plugin_up', help: '1 while a plugin instance is running, else 0.',
    labelNames: ['plugin_instance', 'plugin'] as const, registers,
    collect() {
      for (const inst of sources.registry?.instances() ?? []) this.set(instanceLabels(inst), inst.state === 'running' ? 1 : 0);
    },
  });
  new Counter({
    name: 'plugin_egress_refused_total',
    help: 'Connections the egress proxy of a restricted plugin instance refused, by reason: not-allowed (a host:port outside its egress list), bad-request (not an HTTP CONNECT), connect-failed (an allowed target did not answer).',
    labelNames: ['plugin_instance', 'plugin', 'reason'] as const, registers,
    collect() {
      this.reset();
      for (const inst of sources.registry?.instances() ?? []) {
        for (const refused of inst.sandbox?.stats?.().egressRefused ?? []) {
          this.inc({ ...instanceLabels(inst), reason: budget.value('reason', refused.reason) }, refused.count);
        }
      }
    },
  });
  new Counter({
    name: 'plugin_messages_refused_total',
    help: 'Messages from plugin threads the sandbox refused (too large, too deep, malformed) or dropped past a rate, by kind (event, log, stream, other) and reason.',
    labelNames: ['plugin_instance', 'plugin', 'kind', 'reason'] as const, registers,
    // Read from each sandbox at scrape time: refusals happen on the sandbox's hot path, which must stay a count.
    collect() {
      this.reset();
      for (const inst of sources.registry?.instances() ?? []) {
        for (const refused of inst.sandbox?.stats?.().refused ?? []) {
          this.inc({ ...instanceLabels(inst), kind: budget.value('kind', refused.kind), reason: budget.value('reason', refused.reason) }, refused.count);
        }
      }
    },
  });
  const callLatency = new Histogram({
    name: 'plugin_call_latency_ms', help: 'Latency of calls into plugin threads, by instance and contract method (ms).',
    labelNames: ['plugin_instance', 'plugin', 'method', 'result'] as const, buckets: CALL_BUCKETS, registers,
  });
  const callErrors = new Counter({
    name: 'plugin_call_errors_total', help: 'Failed calls into plugin threads, by instance, method and error code.',
    labelNames: ['plugin_instance', 'plugin', 'method', 'error_code'] as const, registers,
  });
  new Gauge({
    name: 'wm_workers', help: 'Workers in the ledger, by state (ledger phase) and provider instance; 0 for every phase of a configured provider instance that has none.',
    // `provider`, as on the other worker series: Prometheus gives `instance` to the scrape target.
    labelNames: ['state', 'provider'] as const, registers,
    // Read from the ledger at scrape time: one grouped count, so the gauge is exact whoever wrote the records.
    async collect() {
      const counts = await sources.workers?.countByPhase().catch(() => undefined);
      if (counts === undefined) return;
      this.reset();
      for (const inst of sources.registry?.instances() ?? []) {
        if (inst.plugin?.pkg?.metadata.kind !== 'provider') continue;
        for (const phase of LEDGER_PHASES) this.set({ state: phase, provider: provider(inst.name) }, 0);
      }
      for (const c of counts) this.set({ state: c.phase, provider: provider(c.instance) }, c.count);
    },
  });
  const busGauge = (name: string, help: string, read: (stats: BusStats) => number): void => {
    new Gauge({
      name, help, registers,
      collect() {
        const stats = sources.bus?.stats();
        if (stats !== undefined) this.set(read(stats));
      },
    });
  };
  busGauge('event_outbox_depth', 'Events held in the durable outbox, waiting for the bus.', (s) => s.outbox.depth);
  busGauge('event_outbox_oldest_age_ms', 'Age of the oldest event in the outbox (ms); 0 when empty.', (s) => s.outbox.oldestAgeMs);
  busGauge('event_bus_pending', 'Events accepted but not yet acknowledged by the bus.', (s) => s.pending);
  busGauge('event_bus_connected', '1 while the bus adapter is connected, else 0.', (s) => (s.connected ? 1 : 0));
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });

  const provider = (instance: string | undefined): string => (instance === undefined ? 'none' : budget.value('provider', instance));

  const observer: OperationObserver = (record: OperationRecord) => {
    // An observer runs on the hot path of every operation and must never throw into it.
    try {
      const labels = { provider: provider(record.instance), operation: budget.value('operation', record.op) };
      operations.inc({ ...labels, result: record.result });
      if (record.result === 'error') {
        operationErrors.inc({ ...labels, error_category: budget.value('error_category', record.category ?? 'Internal'), error_code: budget.value('error_code', record.code) });
        return;
      }
      if (record.op === 'createWorker') createLatency.observe({ provider: labels.provider }, record.latencyMs);
      else if (record.op === 'terminateWorker') terminateLatency.observe({ provider: labels.provider }, record.latencyMs);
      else if (record.op === 'rotateSecret') {
        const secret = secretNameLabels ? { secret_name: budget.value('secret_name', record.secret) } : {};
        rotationSuccess.inc({ ...secret, provider: labels.provider, strategy: budget.value('strategy', record.trigger) });
        rotationLatency.observe({ ...secret, provider: labels.provider }, record.latencyMs);
      }
    } catch {
      // A metric that cannot be recorded is not worth failing (or slowing down) the operation.
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observer,
    pluginStatus(instance, plugin, change) {
      const labels = { plugin_instance: budget.value('plugin_instance', instance), plugin: budget.value('plugin', plugin.id) };
      if (change.state === 'restarting') pluginRestarts.inc(labels);
      else if (change.state === 'crashed') pluginCrashes.inc({ ...labels, reason: change.reason });
      else if (change.state === 'quarantined') quarantined.set(labels, 1);
    },
    pluginCall(instance, plugin, call) {
      const labels = { plugin_instance: budget.value('plugin_instance', instance), plugin: budget.value('plugin', plugin.id), method: budget.value('method', call.method) };
      callLatency.observe({ ...labels, result: call.error === undefined ? 'ok' : 'error' }, call.latencyMs);
      if (call.error !== undefined) {
        callErrors.inc({ ...labels, error_code: budget.value('error_code', call.error.code) });
        return;
      }
      if (SECRET_DELIVERY.has(call.method)) {
        for (const strategy of mountStrategies(call.params)) secretsMounts.inc({ provider: provider(instance), mount_strategy: strategy });
      }
    },
    workerEvent(instance, event) {
      if (event.type !== 'WorkerFailed') return;
      const labels = { provider: provider(instance) };
      workerFailures.inc({ ...labels, reason: budget.value('reason', reasonFamily(event.reason)) });
      if (event.reason === 'Unhealthy') healthCheckFailures.inc(labels);
    },
    illegalTransition(instance, from, to) {
      illegalTransitions.inc({ provider: provider(instance), from: budget.value('phase', from), to: budget.value('phase', to) });
    },
    reconcileObserver: {
      reconciled: (instance, seconds) => reconcileDuration.observe({ provider: provider(instance) }, seconds),
      drift: (instance, kind) => drift.inc({ provider: provider(instance), kind }),
      orphan: (instance, action) => orphans.inc({ provider: provider(instance), action }),
    },
    foreignEvent(instance) {
      foreignEvents.inc({ plugin_instance: budget.value('plugin_instance', instance) });
    },
    instrumentBus(bus) {
      return timePublishes(bus, (subject, latencyMs, ok) => publishLatency.observe({ subject: budget.value('subject', subject), status: ok ? 'ok' : 'error' }, latencyMs));
    },
    watch(next) {
      sources = { ...sources, ...next };
    },
  };

  function instanceLabels(inst: InstanceRecord): { plugin_instance: string; plugin: string } {
    return { plugin_instance: budget.value('plugin_instance', inst.name), plugin: budget.value('plugin', inst.plugin?.pkg?.metadata.id ?? inst.entry.plugin) };
  }
}

/** Strategies of the `secrets` mounts in a provider call's params; reads only `strategy`, never a value. */
function mountStrategies(params: unknown): string[] {
  const secrets = (params as { secrets?: unknown } | null)?.secrets;
  if (!Array.isArray(secrets)) return [];
  const out: string[] = [];
  for (const mount of secrets as unknown[]) {
    const strategy = (mount as { strategy?: unknown } | null)?.strategy;
    if (strategy === 'env' || strategy === 'file' || strategy === 'volume') out.push(strategy);
  }
  return out;
}
