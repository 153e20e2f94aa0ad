import { hostError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { HOST_SHUTDOWN } from './workerDeadlines.ts';
import type { WorkerLifecycle } from './WorkerLifecycle.ts';

/** `host.onShutdown` and `host.drainTimeoutMs`. */
export interface ShutdownPolicy {
  onShutdown: 'leave-running' | 'drain' | 'terminate';
  drainTimeoutMs: number;
}

/**
 * What a host stop does to its workers, run first at stop, while the API still answers:
 *
 * - `leave-running`: nothing; the workers outlive the host and the next start adopts them.
 * - `drain`: creates are refused from now on (HOST_ERR_DRAINING, with the seconds left as Retry-After); the stop waits
 *   up to `drainTimeoutMs` for the live workers to end by themselves, then terminates the rest.
 * - `terminate`: creates are refused and every live worker is terminated at once.
 *
 * A terminated worker gets its provider's grace period and ends Failed(HostShutdown). Workers that could not be
 * terminated are named in HOST_ERR_SHUTDOWN_WORKERS_LEFT; their records keep the decision, which the next start
 * carries out.
 */
export async function applyShutdownPolicy(lifecycle: WorkerLifecycle, policy: ShutdownPolicy, logger: Logger): Promise<void> {
  if (policy.onShutdown === 'leave-running') return;
  const drain = policy.onShutdown === 'drain';
  const until = Date.now() + (drain ? policy.drainTimeoutMs : 0);
  lifecycle.beginDrain(until);
  let message = 'terminated as the host shut down (host.onShutdown: terminate)';
  if (drain) {
    const live = (await lifecycle.liveRecords()).length;
    logger.info({ workers: live, drainTimeoutMs: policy.drainTimeoutMs }, 'draining: refusing new workers, waiting for the running ones to end');
    const left = await lifecycle.awaitNoLiveWorkers(until);
    if (left === 0) {
      logger.info({ workers: live }, 'drained: every worker has ended');
      return;
    }
    logger.warn({ workers: left, drainTimeoutMs: policy.drainTimeoutMs }, 'drain deadline reached: terminating the workers still running');
    message = `still running when the drain deadline (host.drainTimeoutMs ${policy.drainTimeoutMs} ms) passed`;
  }
  const left = await lifecycle.endAll({ reason: HOST_SHUTDOWN, message });
  if (left.length === 0) return;
  throw hostError('HOST_ERR_SHUTDOWN_WORKERS_LEFT', `${left.length} worker(s) could not be terminated at shutdown (host.onShutdown: ${policy.onShutdown}): ${left.slice(0, 10).join(', ')}${left.length > 10 ? ', ...' : ''}`, {
    details: { workers: left.slice(0, 100), count: left.length, onShutdown: policy.onShutdown },
  });
}
