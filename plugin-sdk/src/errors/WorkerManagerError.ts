import type { ErrorCategory, ErrorCodeSpec, ErrorSeverity } from './categories.ts';
import { SDK_ERROR_CODES, type SdkErrorCode } from './codes.ts';
import type { SerializedError } from './SerializedError.ts';

// A vendor plugin may bundle its own copy of the SDK, so `instanceof` must not depend on one class object.
const kBrand = Symbol.for('worker-manager.error');

const catalogs: Array<Readonly<Record<string, ErrorCodeSpec>>> = [SDK_ERROR_CODES];

/**
 * Adds a package's error catalog (for example the host's `HOST_ERR_*` codes) so that errors with those codes get
 * their category, severity and transient flag when constructed or rebuilt from data.
 */
export function registerErrorCatalog(catalog: Readonly<Record<string, ErrorCodeSpec>>): void {
  if (!catalogs.includes(catalog)) catalogs.push(catalog);
}

/** Looks a code up in every registered catalog. */
export function lookupErrorCode(code: string): ErrorCodeSpec | undefined {
  for (const catalog of catalogs) {
    const spec = catalog[code];
    if (spec !== undefined) return spec;
  }
  return undefined;
}

/** Options for {@link WorkerManagerError}. Category, severity and transient default to the catalog entry. */
export interface WorkerManagerErrorOptions {
  /** Structured, secret-free facts: which field, which plugin, which versions. */
  details?: Record<string, unknown>;
  cause?: unknown;
  category?: ErrorCategory;
  severity?: ErrorSeverity;
  transient?: boolean;
}

/**
 * The one error type of worker-manager. Every failure that crosses a boundary (thread, bus, HTTP) is one of these,
 * identified by a stable `code`. Never put secret values in the message or details.
 */
export class WorkerManagerError extends Error {
  readonly code: string;
  readonly category: ErrorCategory;
  readonly severity: ErrorSeverity;
  readonly transient: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: SdkErrorCode | (string & {}), message: string, options: WorkerManagerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const spec = lookupErrorCode(code);
    this.name = 'WorkerManagerError';
    this.code = code;
    this.category = options.category ?? spec?.category ?? 'Internal';
    this.severity = options.severity ?? spec?.severity ?? 'Medium';
    this.transient = options.transient ?? spec?.transient ?? false;
    this.details = options.details;
    Object.defineProperty(this, kBrand, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kBrand] === true;
  }

  /** The plain-data form that crosses threads and networks. The stack stays on this side. */
  toJSON(): SerializedError {
    const out: SerializedError = {
      $isError: true,
      code: this.code,
      category: this.category,
      severity: this.severity,
      transient: this.transient,
      message: this.message,
    };
    if (this.details !== undefined) out.details = this.details;
    if (isWorkerManagerError(this.cause)) out.cause = this.cause.toJSON();
    return out;
  }

  /** Rebuilds an error from its data form; the code decides what it is, never a prototype. */
  static fromJSON(data: SerializedError): WorkerManagerError {
    const options: WorkerManagerErrorOptions = {
      category: data.category,
      severity: data.severity,
      transient: data.transient,
    };
    if (data.details !== undefined) options.details = data.details;
    if (data.cause !== undefined) options.cause = WorkerManagerError.fromJSON(data.cause);
    return new WorkerManagerError(data.code, data.message, options);
  }
}

/** True for any worker-manager error, whichever copy of the SDK made it. */
export function isWorkerManagerError(value: unknown): value is WorkerManagerError {
  return value instanceof WorkerManagerError;
}

/**
 * Turns anything thrown into a {@link WorkerManagerError}. Unknown errors become `WM_ERR_INTERNAL`; their message
 * is kept (it names the failure), but neither their stack nor their own properties, which may hold data.
 */
export function toWorkerManagerError(value: unknown, fallbackCode: string = 'WM_ERR_INTERNAL'): WorkerManagerError {
  if (isWorkerManagerError(value)) return value;
  if (value instanceof Error) {
    return new WorkerManagerError(fallbackCode, value.message, { cause: value, details: { errorName: value.name } });
  }
  return new WorkerManagerError(fallbackCode, `non-error value thrown: ${typeof value}`);
}
