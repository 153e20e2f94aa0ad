import type { EventBus } from '../../bus/EventBus.ts';
import { createEvent } from '../../bus/createEvent.ts';
import type { Subjects } from '../../bus/subjects.ts';
import type { Logger } from '../../observability/logger.ts';
import type { OperationObserver } from '../../observability/OperationObserver.ts';
import type { PluginRegistry } from '../../plugins/PluginRegistry.ts';
import type { AuditSink } from '../../security/audit/AuditSink.ts';
import { requesterPrincipal } from './requesterPrincipal.ts';
import type { RotationJournal } from './RotationJournal.ts';
import type { Announcement, JournalEntry } from './RotationRecord.ts';
import { errorOf, type Failure } from './rotationSupport.ts';

/** What the reporter tells, and where. */
export interface RotationReporterDeps {
  registry: PluginRegistry;
  bus: EventBus;
  subjects: Subjects;
  hostId: string;
  logger: Logger;
  journal: RotationJournal;
  audit?: AuditSink | undefined;
  observer?: OperationObserver | undefined;
}

/**
 * Everything the rotation engine tells the outside about a record: audit entries for each transition, operation
 * records for the metrics, and the bus events (`ci.secret.rotated` / `rotation_failed`), which go through the record's
 * journal outbox so that none is lost to a crash or a refusing bus. Names, versions and ids only: never a value. None
 * of it ever fails a rotation.
 */
export class RotationReporter {
  readonly #d: RotationReporterDeps;
  /** Records whose owed events are being published, so two flushes never publish one twice. */
  readonly #flushing = new Set<string>();

  constructor(deps: RotationReporterDeps) {
    this.#d = deps;
  }

  async audit(entry: JournalEntry, failure?: Failure, extra: Record<string, unknown> = {}): Promise<void> {
    const audit = this.#d.audit;
    if (audit === undefined) return;
    const error = failure ?? (entry.state === 'failed' || entry.state === 'cancelled' ? entry.error : undefined);
    const plugin = this.#pluginOf(entry.credentials);
    try {
      await audit.record({
        kind: entry.operation === 'rollback' ? 'secret.rollback' : 'secret.rotation',
        principal: requesterPrincipal(entry.requester, entry.tenant),
        action: entry.operation === 'rollback' ? 'secret:rollback' : 'secret:rotate',
        resource: `Secret::${entry.credentials}/${entry.name}`,
        result: error === undefined ? 'ok' : 'error',
        ...(entry.correlationId === undefined ? {} : { correlationId: entry.correlationId }),
        details: {
          rotationId: entry.id,
          operation: entry.operation,
          state: entry.state,
          step: entry.step ?? null,
          trigger: entry.trigger,
          provider: entry.credentials,
          plugin: plugin?.id ?? null,
          previousVersion: entry.previousVersion ?? null,
          newVersion: entry.newVersion ?? null,
          workers: [...entry.workers],
          latencyMs: entry.latencyMs ?? Date.now() - entry.startedAtMs,
          ...(entry.rollbackOf === undefined ? {} : { rollbackOf: entry.rollbackOf }),
          ...(error === undefined ? {} : { code: error.code, error: error.message }),
          ...extra,
        },
      });
    } catch (err) {
      this.#d.logger.error({ rotationId: entry.id, err: errorOf(err) }, 'rotation audit record could not be written');
    }
  }

  observe(entry: JournalEntry, op: 'rotateSecret' | 'rollbackSecret', failure: Failure | undefined): void {
    const observer = this.#d.observer;
    if (observer === undefined) return;
    const plugin = this.#pluginOf(entry.credentials);
    try {
      observer({
        op,
        instance: entry.credentials,
        ...(plugin === undefined ? {} : { plugin: plugin.id }),
        ...(entry.correlationId === undefined ? {} : { correlationId: entry.correlationId }),
        ...(entry.tenant === undefined ? {} : { tenant: entry.tenant }),
        result: failure === undefined ? 'ok' : 'error',
        ...(failure === undefined ? {} : { code: failure.code, ...(failure.category === undefined ? {} : { category: failure.category }) }),
        latencyMs: entry.latencyMs ?? Date.now() - entry.startedAtMs,
        secret: entry.name,
        trigger: entry.trigger,
      });
    } catch {
      // An observer must not break a rotation.
    }
  }

  /** Owes an event for the record; the next journal write makes the debt durable, `flushOutbox` pays it. */
  announce(entry: JournalEntry, event: Announcement['event'], extra: Omit<Announcement, 'event'> = {}): void {
    (entry.outbox ??= []).push({ event, ...extra });
  }

  /**
   * Publishes what the record owes, in order, and writes the journal without them. One that the bus refuses stays,
   * with those after it, for the next flush: when the record completes, or at the next start.
   */
  async flushOutbox(entry: JournalEntry): Promise<void> {
    if (entry.outbox === undefined || this.#flushing.has(entry.id)) return;
    this.#flushing.add(entry.id);
    try {
      let paid = false;
      for (let owed = entry.outbox[0]; owed !== undefined; owed = entry.outbox[0]) {
        const { event, ...extra } = owed;
        if (!(await this.#publish(event, entry, extra))) break;
        entry.outbox.shift();
        paid = true;
      }
      if (entry.outbox.length === 0) delete entry.outbox;
      // A failed write only means the event may be published again after a restart.
      if (paid) await this.#d.journal.save().catch((error: unknown) => this.#d.logger.warn({ rotationId: entry.id, err: errorOf(error) }, 'the journal could not record a published rotation event'));
    } finally {
      this.#flushing.delete(entry.id);
    }
  }

  /** Names, versions and ids only: never a value. Publishing never fails a rotation; false when the bus refused. */
  async #publish(name: Announcement['event'], entry: JournalEntry, extra: Record<string, unknown>): Promise<boolean> {
    const data = {
      secret: entry.name,
      credentials: entry.credentials,
      rotationId: entry.id,
      operation: entry.operation,
      trigger: entry.trigger,
      state: entry.state,
      previousVersion: entry.previousVersion ?? null,
      newVersion: entry.newVersion ?? null,
      workers: [...entry.workers],
      ...(entry.rollbackOf === undefined ? {} : { rollbackOf: entry.rollbackOf }),
      ...extra,
    };
    try {
      await this.#d.bus.publish(createEvent(this.#d.subjects, this.#d.hostId, name, data, { subject: `${entry.credentials}/${entry.name}`, correlationId: entry.correlationId, tenant: entry.tenant }));
      return true;
    } catch (error) {
      this.#d.logger.error({ rotationId: entry.id, event: name, err: errorOf(error) }, 'rotation event could not be published; it stays in the journal and is published again later');
      return false;
    }
  }

  #pluginOf(credentials: string): { id: string; version: string } | undefined {
    try {
      const pkg = this.#d.registry.instance(credentials).plugin?.pkg;
      return pkg === undefined ? undefined : { id: pkg.metadata.id, version: pkg.version };
    } catch {
      return undefined;
    }
  }
}
