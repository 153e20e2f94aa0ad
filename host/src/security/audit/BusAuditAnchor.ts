import { randomUUID } from 'node:crypto';
import type { EventBus } from '../../bus/EventBus.ts';
import type { EventEnvelope } from '../../bus/EventEnvelope.ts';
import { AUDIT_HEAD_TYPE, type Subjects } from '../../bus/subjects.ts';
import { hostError } from '../../errors.ts';
import { asAuditHead, type AuditAnchor, type AuditHead } from './AuditAnchor.ts';

/** What the anchor needs of a bus: the host's bus, or the one-shot JetStream client `wm audit` uses. */
export type HeadBus = Pick<EventBus, 'adapter' | 'publish' | 'lastEvent'>;

/**
 * The anchor on the bus: each head is an event (type `dev.worker-manager.audit.head`) on `audit.<prefix>.head.<host>`.
 * On JetStream it is stored in the stream with role `auditAnchor`, which denies deletes and purges, so the host's own
 * NATS credentials can add heads but not take one back; the last one is read back with the bus's `lastEvent`. The
 * memory bus holds the last head only while the process lives.
 */
export class BusAuditAnchor implements AuditAnchor {
  readonly name: string;
  readonly subject: string;
  readonly #bus: HeadBus;
  readonly #hostId: string;

  constructor(deps: { bus: HeadBus; subjects: Subjects; hostId: string }) {
    this.#bus = deps.bus;
    this.#hostId = deps.hostId;
    this.subject = deps.subjects.auditHead(deps.hostId);
    this.name = `bus:${deps.bus.adapter}:${this.subject}`;
  }

  publish(head: AuditHead): Promise<void> {
    const event: EventEnvelope<AuditHead> = {
      specversion: '1.0',
      id: randomUUID(),
      source: this.#hostId,
      type: AUDIT_HEAD_TYPE,
      subject: `AuditLog::${this.#hostId}`,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      dataversion: 1,
      busSubject: this.subject,
      data: head,
    };
    return this.#bus.publish(event);
  }

  async latest(): Promise<AuditHead | undefined> {
    if (this.#bus.lastEvent === undefined) return undefined;
    let event: EventEnvelope | undefined;
    try {
      event = await this.#bus.lastEvent(this.subject);
    } catch (error) {
      throw hostError('HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE', `audit anchor ${this.name} cannot be read: ${(error as Error).message}`, { details: { anchor: this.name }, cause: error });
    }
    if (event === undefined) return undefined;
    const head = event.type === AUDIT_HEAD_TYPE ? asAuditHead(event.data) : undefined;
    if (head === undefined) throw hostError('HOST_ERR_AUDIT_ANCHOR_UNAVAILABLE', `the last event on ${this.subject} is not an audit chain head`, { details: { anchor: this.name, eventId: event.id } });
    return head;
  }
}
