import type { Logger } from '../../observability/logger.ts';
import type { AuditAnchor, AuditHead } from './AuditAnchor.ts';

interface Lane {
  anchor: AuditAnchor;
  /** The publish under way, if any. */
  busy: Promise<void> | undefined;
  /** The newest head waiting for the publish under way; older waiting heads are superseded by it. */
  waiting: AuditHead | undefined;
  /** Seq of the last head this anchor accepted. */
  anchoredSeq: number;
}

/**
 * Publishes the chain head to every anchor: once `everyRecords` records were written since the last head, or at the
 * latest `everyMs` after the first record it does not cover yet. Off the record's path: `record()` resolves once its
 * record is durable in the log, and heads follow. Each anchor has one publish in flight at a time; heads that arrive
 * meanwhile collapse into the newest, so a slow anchor costs lag, never a queue. A failed publish is logged and the
 * next head tries again; `flush()` (at stop) publishes the last head and waits for every anchor.
 */
export class HeadAnchoring {
  readonly #lanes: Lane[];
  readonly #every: { records: number; ms: number };
  readonly #log: Logger | undefined;
  #head: AuditHead | undefined;
  #uncovered = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: { anchors: readonly AuditAnchor[]; every: { records: number; ms: number }; logger?: Logger | undefined }) {
    this.#lanes = deps.anchors.map((anchor) => ({ anchor, busy: undefined, waiting: undefined, anchoredSeq: 0 }));
    this.#every = deps.every;
    this.#log = deps.logger;
  }

  /** Seq of the last head every anchor accepted (0 before any). */
  get anchoredSeq(): number {
    return this.#lanes.reduce((min, lane) => Math.min(min, lane.anchoredSeq), Number.MAX_SAFE_INTEGER);
  }

  /** `records` more records were written; `head` is the chain's head after them. */
  appended(head: AuditHead, records: number): void {
    this.#head = head;
    this.#uncovered += records;
    if (this.#uncovered >= this.#every.records) {
      this.#publish();
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#publish(), this.#every.ms);
      this.#timer.unref();
    }
  }

  /**
   * Publishes the current head now to every anchor that does not hold it yet (also one whose last publish failed),
   * and waits until each took it or failed.
   */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#uncovered = 0;
    const head = this.#head;
    if (head !== undefined) {
      for (const lane of this.#lanes) {
        if (lane.anchoredSeq >= head.seq) continue;
        if (lane.busy === undefined) this.#send(lane, head);
        else lane.waiting = head;
      }
    }
    for (;;) {
      const busy = this.#lanes.map((l) => l.busy).filter((b) => b !== undefined);
      if (busy.length === 0) return;
      await Promise.all(busy);
    }
  }

  #publish(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const head = this.#head;
    this.#uncovered = 0;
    if (head === undefined) return;
    for (const lane of this.#lanes) {
      if (lane.busy === undefined) this.#send(lane, head);
      else lane.waiting = head;
    }
  }

  #send(lane: Lane, head: AuditHead): void {
    lane.busy = lane.anchor.publish(head).then(
      () => {
        lane.anchoredSeq = Math.max(lane.anchoredSeq, head.seq);
      },
      (error: unknown) => {
        this.#log?.error({ anchor: lane.anchor.name, seq: head.seq, err: (error as Error).message }, 'audit chain head could not be anchored; the next head tries again (verify reports the records after the last anchored head)');
      },
    ).finally(() => {
      lane.busy = undefined;
      const next = lane.waiting;
      lane.waiting = undefined;
      if (next !== undefined && next.seq > lane.anchoredSeq) this.#send(lane, next);
    });
  }
}
