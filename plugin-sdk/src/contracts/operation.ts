import type { Static, TSchema } from 'typebox';

/** A request/response operation of a contract. */
export interface CallOperation<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  readonly kind: 'call';
  readonly params: P;
  readonly result: R;
  /** The capability a plugin must declare (and the host must negotiate) before this operation is routed to it. */
  readonly capability: string;
  readonly idempotent: boolean;
}

/** An operation whose result is a stream of items (log chunks), delivered over a MessagePort. */
export interface StreamOperation<P extends TSchema = TSchema, I extends TSchema = TSchema> {
  readonly kind: 'stream';
  readonly params: P;
  readonly item: I;
  readonly capability: string;
  readonly idempotent: boolean;
}

/** Any contract operation. */
export type Operation = CallOperation | StreamOperation;

/** A contract: a named, versioned set of operations. */
export interface Contract<Ops extends Record<string, Operation> = Record<string, Operation>> {
  readonly name: string;
  /** Semver of the contract; it is the host API version plugins negotiate against. */
  readonly version: string;
  readonly operations: Ops;
}

/** Per-call facts a handler may use. */
export interface CallContext {
  /** Aborted when the caller's deadline passes or the host shuts down; long operations should stop. */
  readonly signal: AbortSignal;
  readonly correlationId: string | undefined;
}

/** The plugin-side handler of one operation. */
export type HandlerOf<O extends Operation> = O extends CallOperation<infer P, infer R>
  ? (params: Static<P>, call: CallContext) => Promise<Static<R>>
  : O extends StreamOperation<infer P, infer I>
    ? (params: Static<P>, call: CallContext) => AsyncIterable<Static<I>> | Promise<AsyncIterable<Static<I>>>
    : never;

/** The host-side, promise-returning view of one operation (VS Code's `Proxied<T>`). */
export type ProxiedOf<O extends Operation> = O extends CallOperation<infer P, infer R>
  ? (params: Static<P>, options?: CallOptions) => Promise<Static<R>>
  : O extends StreamOperation<infer P, infer I>
    ? (params: Static<P>, options?: CallOptions) => Promise<AsyncIterable<Static<I>> & { cancel(): void }>
    : never;

/** Options of a host-side call. */
export interface CallOptions {
  /** Deadline for this call; the instance default applies when absent. */
  timeoutMs?: number;
  correlationId?: string;
  signal?: AbortSignal;
}

/** Typed host-side proxy over every operation of a contract. */
export type Proxied<C extends Contract> = { [K in keyof C['operations']]: ProxiedOf<C['operations'][K]> };

/** Helper that keeps the literal types of an operation table. */
export function call<P extends TSchema, R extends TSchema>(op: Omit<CallOperation<P, R>, 'kind'>): CallOperation<P, R> {
  return { kind: 'call', ...op };
}

/** Helper that keeps the literal types of a stream operation. */
export function stream<P extends TSchema, I extends TSchema>(op: Omit<StreamOperation<P, I>, 'kind'>): StreamOperation<P, I> {
  return { kind: 'stream', ...op };
}
