import { toWorkerManagerError, WorkerManagerError, type SerializedError } from '@worker-manager/plugin-sdk';
import { hostError, type HostErrorCode } from '../errors.ts';
import { schemaIssues, type CompiledCheck } from './contractValidators.ts';
import type { SandboxCall, SandboxStatusReason } from './PluginSandbox.ts';

/**
 * Errors and call timing shared by both sandboxes (threads in this process, and a confined process): a caller sees
 * the same codes, messages and details whichever tier runs the plugin.
 */

/** Who an error is about: every plugin error names the plugin, its instance and its version (STYLE 4). */
export interface Subject {
  plugin: string;
  instance: string;
  version: string;
}

export function subjectError(subject: Subject, code: HostErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown): WorkerManagerError {
  return hostError(code, message, cause === undefined ? { details: { ...subject, ...details } } : { details: { ...subject, ...details }, cause: toWorkerManagerError(cause) });
}

export function notNegotiatedError(subject: Subject, method: string): WorkerManagerError {
  return new WorkerManagerError('WM_ERR_COMPATIBILITY', `operation '${method}' was not negotiated with plugin '${subject.plugin}' (instance '${subject.instance}')`, {
    details: { ...subject, method },
  });
}

export function invalidParamsError(subject: Subject, op: { name: string; params: CompiledCheck }, params: unknown): WorkerManagerError {
  const issues = schemaIssues(op.params, params);
  const first = issues[0];
  return new WorkerManagerError('WM_ERR_VALIDATION', `invalid params for '${op.name}' at ${first?.instancePath || '/'}: ${first?.message ?? 'invalid'}`, {
    details: { ...subject, method: op.name, instancePath: first?.instancePath ?? '', issues },
  });
}

export function stoppedError(subject: Subject): WorkerManagerError {
  return subjectError(subject, 'HOST_ERR_PLUGIN_STOPPED', `plugin '${subject.plugin}' instance '${subject.instance}' is stopped`);
}

/** Rebuilds an error that crossed the sandbox boundary, naming the plugin when the plugin did not. */
export function rebuildError(subject: Subject, wire: unknown): WorkerManagerError {
  // The wire shape was checked against SerializedError; its static type only loses the recursive `cause`.
  const data = wire as SerializedError;
  if (data.details?.['plugin'] !== undefined) return WorkerManagerError.fromJSON(data);
  return WorkerManagerError.fromJSON({ ...data, details: { ...data.details, ...subject } });
}

/** Start failures that already say what went wrong; anything else is wrapped as a load failure. */
const START_ERRORS: ReadonlySet<string> = new Set([
  'HOST_ERR_PLUGIN_LOAD_FAILED', 'HOST_ERR_PLUGIN_SETUP_FAILED', 'HOST_ERR_PLUGIN_STOPPED', 'HOST_ERR_PLUGIN_START_TIMEOUT', 'HOST_ERR_SANDBOX_UNAVAILABLE', 'HOST_ERR_PLUGIN_PACKAGE_UNSAFE',
  'HOST_ERR_PLUGIN_METADATA_DRIFT',
]);

export function startError(error: unknown, subject: Subject): WorkerManagerError {
  const wm = toWorkerManagerError(error);
  if (START_ERRORS.has(wm.code)) return wm;
  return hostError('HOST_ERR_PLUGIN_LOAD_FAILED', `plugin '${subject.plugin}' instance '${subject.instance}' did not start: ${wm.message}`, { details: { ...subject }, cause: wm });
}

const REASONS: ReadonlySet<string> = new Set(['crash', 'oom', 'hang', 'timeout', 'foreign-events', 'flood', 'boot', 'started', 'restarted']);

/** A status reason from a string another side sent: an unknown one counts as a crash. */
export function knownReason(reason: string): SandboxStatusReason {
  return REASONS.has(reason) ? (reason as SandboxStatusReason) : 'crash';
}

/** The status reason an error carries in `details.reason`, or `fallback`. */
export function reasonOf(error: WorkerManagerError, fallback: SandboxStatusReason = 'boot'): SandboxStatusReason {
  const reason = error.details?.['reason'];
  return typeof reason === 'string' && REASONS.has(reason) && reason !== 'started' && reason !== 'restarted' ? (reason as SandboxStatusReason) : fallback;
}

/** Tells `onCall` (if any) how the call settled, with its latency; the settled promise is returned as it is. */
export function timeCall(onCall: ((call: SandboxCall) => void) | undefined, method: string, params: unknown, dispatch: () => Promise<unknown>, safely: (fn: () => void) => void): Promise<unknown> {
  if (onCall === undefined) return dispatch();
  const start = performance.now();
  const settled = dispatch();
  settled.then(
    () => safely(() => onCall({ method, params, latencyMs: performance.now() - start })),
    (error: unknown) => {
      const wm = toWorkerManagerError(error);
      safely(() => onCall({ method, params, latencyMs: performance.now() - start, error: { code: wm.code, category: wm.category } }));
    },
  );
  return settled;
}
