import { ChannelMessage } from '@worker-manager/plugin-sdk/internal';
import type { Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { ChannelLimits } from '../config/schema.ts';
import { schemaIssues } from './contractValidators.ts';
import { readJsonText, type ReadText, type TextRefusal } from './jsonText.ts';
import { TokenBucket } from './TokenBucket.ts';

/** The limits of {@link ChannelGuard}, every field set. */
export type ChannelLimitValues = Static<typeof ChannelLimits>;

/** `limits.channel` as configured, with the schema's default for every field left out. */
export function channelLimits(configured: Partial<ChannelLimitValues> | undefined): ChannelLimitValues {
  return Value.Default(ChannelLimits, { ...configured }) as ChannelLimitValues;
}

/** What a refused message was: what the thread said it was, or a stream item. */
export type MessageKind = 'event' | 'log' | 'stream' | 'other';

/** Why a message was refused: over a limit, outside the protocol, or past its rate. */
export type RefusalReason = TextRefusal | 'rate';

/** One count of {@link ChannelGuard.refused}. */
export interface RefusedCount {
  kind: MessageKind;
  reason: RefusalReason;
  count: number;
}

/** What the guard tells its sandbox. */
export interface ChannelGuardHooks {
  /** A warn line for the host's log: sizes and kinds only, never the message's content. */
  warn(message: string, fields: Record<string, unknown>): void;
  /**
   * Called when drops past a rate have lasted `floodSeconds` consecutive seconds. True when the sandbox acted on it
   * (quarantine), after which it is not called again; false (the instance is still starting) counts the seconds anew.
   */
  flood(detail: { kind: MessageKind; seconds: number; dropped: number }): boolean;
  /** Called after each refusal is counted (an out-of-process sandbox forwards its counts to the host with it). */
  refused?(): void;
}

const channelCheck = Compile(ChannelMessage);
/** How often, at most, one kind of refusal is written to the host's log; the others are counted in the next line. */
const WARN_EVERY_MS = 1_000;
/** What a message that is not text costs the log-bytes bucket: it was cloned, so it cost the host something. */
const NOMINAL_BYTES = 1_024;

/**
 * The host's side of the channels of one plugin instance: each message a thread sends is JSON text, refused unparsed
 * when too large or too deep, then checked against the protocol. Events and log bytes are rate-limited per instance
 * (token buckets shared by its threads); every refusal is counted, and drops past a rate that go on for `floodSeconds`
 * consecutive seconds report a flood, which quarantines the instance.
 */
export class ChannelGuard {
  readonly #limits: ChannelLimitValues;
  readonly #hooks: ChannelGuardHooks;
  readonly #now: () => number;
  readonly #events: TokenBucket;
  readonly #logBytes: TokenBucket;
  readonly #counts = new Map<string, RefusedCount>();
  readonly #warned = new Map<string, { at: number; suppressed: number }>();
  /** The second (epoch s) of the last drop past a rate, and how many consecutive seconds have had one. */
  #lastDropSecond = -1;
  #dropSeconds = 0;
  #flooded = false;

  constructor(limits: ChannelLimitValues, hooks: ChannelGuardHooks, now: () => number = Date.now) {
    this.#limits = limits;
    this.#hooks = hooks;
    this.#now = now;
    this.#events = new TokenBucket(limits.eventsPerSecond, limits.eventBurst, now);
    this.#logBytes = new TokenBucket(limits.logBytesPerSecond, limits.logBurstBytes, now);
  }

  get limits(): ChannelLimitValues {
    return this.#limits;
  }

  /** The message a thread sent, or undefined when it was refused (and counted). */
  admit(raw: unknown, threadId: number): ChannelMessage | undefined {
    const kind = kindOf(raw);
    const bytes = typeof raw === 'string' ? raw.length : NOMINAL_BYTES;
    // Charged before any other check, so a thread repeating oversized or malformed messages floods like any other.
    const withinRate = kind === 'event' ? this.#events.take(1) : this.#logBytes.take(bytes);
    if (!withinRate) this.#rateBreached(kind);
    if (bytes > this.#limits.maxMessageBytes) return this.#refuse(kind, 'too-large', bytes, threadId);
    if (!withinRate) return this.#refuse(kind, 'rate', bytes, threadId);
    const read = readJsonText(raw, this.#limits.maxMessageBytes, this.#limits.maxDepth);
    if (!read.ok) return this.#refuse(kind, read.reason, bytes, threadId);
    const message = read.value;
    if (!channelCheck.Check(message) || message.type !== kind) {
      const issue = channelCheck.Check(message) ? undefined : schemaIssues(channelCheck, message, 1)[0];
      return this.#refuse(kind, 'malformed', bytes, threadId, issue === undefined ? undefined : { instancePath: issue.instancePath, rule: issue.message });
    }
    return message;
  }

  /**
   * Reads one stream message (a log chunk of `getLogs`) with the size and depth limits, counting a refusal; no rate:
   * the caller asked for the stream and reads it at its own pace.
   */
  streamMessage(raw: unknown): ReadText {
    const read = readJsonText(raw, this.#limits.maxMessageBytes, this.#limits.maxDepth);
    if (!read.ok) this.#refuse('stream', read.reason, typeof raw === 'string' ? raw.length : NOMINAL_BYTES, undefined);
    return read;
  }

  /** Refused messages so far, by kind and reason. */
  refused(): RefusedCount[] {
    return [...this.#counts.values()].map((c) => ({ ...c }));
  }

  #refuse(kind: MessageKind, reason: RefusalReason, bytes: number, threadId: number | undefined, issue?: Record<string, unknown>): undefined {
    const key = `${kind}/${reason}`;
    const count = this.#counts.get(key);
    if (count === undefined) this.#counts.set(key, { kind, reason, count: 1 });
    else count.count++;
    this.#hooks.refused?.();
    const now = this.#now();
    const warned = this.#warned.get(key);
    if (warned !== undefined && now - warned.at < WARN_EVERY_MS) {
      warned.suppressed++;
      return undefined;
    }
    const suppressed = warned?.suppressed ?? 0;
    this.#warned.set(key, { at: now, suppressed: 0 });
    const limit = reason === 'too-large' ? this.#limits.maxMessageBytes : reason === 'too-deep' ? this.#limits.maxDepth : undefined;
    this.#hooks.warn('plugin thread message dropped', {
      kind,
      reason,
      bytes,
      ...(limit === undefined ? {} : { limit }),
      ...(threadId === undefined ? {} : { threadId }),
      ...(issue === undefined ? {} : { issue }),
      ...(suppressed > 0 ? { suppressed } : {}),
    });
    return undefined;
  }

  #rateBreached(kind: MessageKind): void {
    if (this.#flooded) return;
    const second = Math.floor(this.#now() / 1_000);
    if (second === this.#lastDropSecond) return;
    this.#dropSeconds = second === this.#lastDropSecond + 1 ? this.#dropSeconds + 1 : 1;
    this.#lastDropSecond = second;
    if (this.#dropSeconds < this.#limits.floodSeconds) return;
    let dropped = 1;
    for (const count of this.#counts.values()) if (count.reason === 'rate') dropped += count.count;
    this.#flooded = this.#hooks.flood({ kind, seconds: this.#dropSeconds, dropped });
    if (!this.#flooded) this.#dropSeconds = 0;
  }
}

/**
 * The kind a thread's message says it is, read from its first characters without parsing (threads write `type`
 * first). Only a label for counting and for picking the rate: a message whose parsed type differs is refused.
 */
function kindOf(raw: unknown): MessageKind {
  if (typeof raw !== 'string') return 'other';
  if (raw.startsWith('{"type":"event"')) return 'event';
  if (raw.startsWith('{"type":"log"')) return 'log';
  return 'other';
}
