import { randomUUID } from 'node:crypto';
import type { Static, TSchema } from 'typebox';
import { WorkerManagerError, type ErrorCategory } from '@worker-manager/plugin-sdk';
import { ApiError } from '../../api/apiSchemas.ts';
import { hostError } from '../../errors.ts';
import { checkerFor } from './checkerFor.ts';
import { redactUrl, type Connection } from './cliConfig.ts';
import { parseEventStream, type ServerSentEvent } from './parseEventStream.ts';

/** Query values; arrays repeat the key (`label=a=1&label=b=2`), undefined ones are left out. */
export type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

/** One request. `schema` checks a 2xx answer, so a command never formats a shape it does not expect. */
export interface RequestOptions<S extends TSchema> {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** Gives up after this long with HOST_ERR_CLI_UNREACHABLE; default the client's. */
  timeoutMs?: number;
  schema?: S;
}


/** The category of an HTTP status whose body is not an API error (a proxy, a wrong URL). */
function categoryOfStatus(status: number): ErrorCategory {
  if (status === 401 || status === 403) return 'Authorization';
  if (status === 408 || status === 429 || status === 502 || status === 503 || status === 504) return 'TransientInfrastructure';
  return status < 500 ? 'ClientValidation' : 'PermanentInfrastructure';
}

/** An API error body as the coded error it stands for, with the HTTP status and correlation id in its details. */
export function errorFromBody(body: unknown, status: number | undefined): WorkerManagerError | undefined {
  if (!checkerFor(ApiError).Check(body)) return undefined;
  return new WorkerManagerError(body.code, body.message, {
    category: body.category,
    details: { ...body.details, correlationId: body.correlationId, ...(status === undefined ? {} : { httpStatus: status }) },
  });
}

/**
 * HTTP client of the REST API (node's fetch): bearer auth, JSON in and out, every failure a coded error. It never
 * puts the token in a message; URLs in messages lose any user:password part.
 */
export class ApiClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #correlationId: string;

  constructor(connection: Connection, options: { timeoutMs?: number } = {}) {
    this.url = connection.url;
    this.#token = connection.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    // One id for every request of this invocation, so the host's log lines of one command can be found together.
    this.#correlationId = `wm-cli-${randomUUID()}`;
  }

  #target(path: string, query: Query | undefined): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
    }
    const qs = params.toString();
    return `${this.url}${path}${qs === '' ? '' : `?${qs}`}`;
  }

  #headers(extra: Record<string, string> | undefined): Record<string, string> {
    return {
      accept: 'application/json',
      'x-correlation-id': this.#correlationId,
      ...(this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }),
      ...extra,
    };
  }

  #unreachable(error: unknown, method: string, path: string, timeoutMs: number): WorkerManagerError {
    const where = `${method} ${redactUrl(this.url)}${path}`;
    const name = (error as { name?: unknown }).name;
    if (name === 'TimeoutError') return hostError('HOST_ERR_CLI_UNREACHABLE', `no answer from ${where} within ${timeoutMs} ms`, { details: { url: redactUrl(this.url) } });
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : (error as Error).message;
    // A refused connection is nearly always a host that is not running, or another URL: say what to do next.
    const hint = reason === 'ECONNREFUSED' ? '; is the host running? Start it with `npm start`, or point wm at it with --url or WM_URL' : '';
    return hostError('HOST_ERR_CLI_UNREACHABLE', `cannot reach the worker-manager API at ${redactUrl(this.url)} (${method} ${path}): ${reason}${hint}`, { details: { url: redactUrl(this.url), reason } });
  }

  async #failure(res: Response, method: string, path: string): Promise<WorkerManagerError> {
    const text = await res.text().catch(() => '');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return (
      errorFromBody(body, res.status) ??
      hostError('HOST_ERR_CLI_BAD_RESPONSE', `${method} ${path} answered HTTP ${res.status} without a worker-manager error body`, {
        category: categoryOfStatus(res.status),
        details: { httpStatus: res.status },
      })
    );
  }

  /** Sends one request and returns the parsed JSON answer of a 2xx, checked against `schema` when given. */
  async request<S extends TSchema = TSchema>(method: string, path: string, options: RequestOptions<S> = {}): Promise<Static<S>> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const hasBody = options.body !== undefined;
    let res: Response;
    try {
      res = await fetch(this.#target(path, options.query), {
        method,
        headers: this.#headers({ ...(hasBody ? { 'content-type': 'application/json' } : {}), ...options.headers }),
        ...(hasBody ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw this.#unreachable(error, method, path, timeoutMs);
    }
    if (!res.ok) throw await this.#failure(res, method, path);
    let body: unknown;
    try {
      body = await res.json();
    } catch (error) {
      if ((error as { name?: unknown }).name === 'TimeoutError') throw this.#unreachable(error, method, path, timeoutMs);
      throw hostError('HOST_ERR_CLI_BAD_RESPONSE', `${method} ${path} answered HTTP ${res.status} with a body that is not JSON`, { details: { httpStatus: res.status } });
    }
    if (options.schema !== undefined) {
      const check = checkerFor(options.schema);
      if (!check.Check(body)) {
        const first = [...check.Errors(body)][0];
        throw hostError('HOST_ERR_CLI_BAD_RESPONSE', `${method} ${path} answered a shape this wm does not know (${first?.instancePath ?? ''}: ${first?.message ?? 'invalid'}); is the host a different version?`, {
          details: { httpStatus: res.status, path: first?.instancePath },
        });
      }
    }
    return body as Static<S>;
  }

  /**
   * Opens a Server-Sent Events stream. A non-2xx answer throws its coded error before any event. A stream that
   * stays silent for `idleTimeoutMs` (the API sends keep-alives) ends as if dropped, so the caller can resume.
   */
  async openEventStream(
    path: string,
    options: { query?: Query; lastEventId?: string; signal?: AbortSignal; idleTimeoutMs?: number; connectTimeoutMs?: number } = {},
  ): Promise<AsyncGenerator<ServerSentEvent>> {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const connectTimeoutMs = options.connectTimeoutMs ?? this.#timeoutMs;
    const connectTimer = setTimeout(() => controller.abort(Object.assign(new Error('connect timeout'), { name: 'TimeoutError' })), connectTimeoutMs);
    let res: Response;
    try {
      res = await fetch(this.#target(path, options.query), {
        headers: this.#headers({ accept: 'text/event-stream', ...(options.lastEventId === undefined ? {} : { 'last-event-id': options.lastEventId }) }),
        signal: controller.signal,
      });
    } catch (error) {
      options.signal?.removeEventListener('abort', onAbort);
      throw this.#unreachable(controller.signal.reason ?? error, 'GET', path, connectTimeoutMs);
    } finally {
      clearTimeout(connectTimer);
    }
    if (!res.ok || res.body === null) {
      options.signal?.removeEventListener('abort', onAbort);
      throw await this.#failure(res, 'GET', path);
    }
    const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
    const body = res.body as unknown as AsyncIterable<Uint8Array>;
    async function* watched(): AsyncGenerator<Uint8Array> {
      let idle = setTimeout(() => controller.abort(), idleTimeoutMs);
      try {
        for await (const chunk of body) {
          clearTimeout(idle);
          idle = setTimeout(() => controller.abort(), idleTimeoutMs);
          yield chunk;
        }
      } finally {
        clearTimeout(idle);
        options.signal?.removeEventListener('abort', onAbort);
        controller.abort();
      }
    }
    return parseEventStream(watched());
  }
}
