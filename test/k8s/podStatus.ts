import type { V1ContainerStatus, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';

/** Pod conditions whose lastTransitionTime changes only when their status does, as the kubelet's status manager keeps them. */
export class PodConditions {
  readonly #times = new Map<string, { status: string; time: Date }>();

  condition(type: string, ok: boolean, reason?: string, message?: string): V1PodCondition {
    const status = ok ? 'True' : 'False';
    const previous = this.#times.get(type);
    const time = previous !== undefined && previous.status === status ? previous.time : rfc3339(new Date());
    this.#times.set(type, { status, time });
    const condition: V1PodCondition = { type, status, lastProbeTime: null as unknown as Date, lastTransitionTime: time };
    if (!ok && reason !== undefined) {
      condition.reason = reason;
      condition.message = message;
    }
    return condition;
  }
}

export interface PodStatusInput {
  restartPolicy: string;
  initStatuses: V1ContainerStatus[];
  containerStatuses: V1ContainerStatus[];
  conditions: PodConditions;
  hostIP: string;
  podIP: string;
  startTime: Date | undefined;
  qosClass: string | undefined;
}

/** The pod status the kubelet (1.20, generateAPIPodStatus) derives from its containers' statuses. */
export function podStatus(input: PodStatusInput): V1PodStatus {
  const { initStatuses, containerStatuses, conditions } = input;
  const initialized = initStatuses.every((s) => s.state?.terminated?.exitCode === 0);
  const initFailed =
    input.restartPolicy === 'Never' && initStatuses.some((s) => s.state?.terminated !== undefined && s.state.terminated.exitCode !== 0);
  const phase = initFailed ? 'Failed' : initialized ? podPhase(containerStatuses, input.restartPolicy) : 'Pending';
  const unready = containerStatuses.filter((s) => !s.ready).map((s) => s.name);
  const ready = unready.length === 0 && phase === 'Running';
  const notReady = phase === 'Succeeded' ? 'PodCompleted' : 'ContainersNotReady';
  const unreadyMessage = `containers with unready status: [${unready.join(' ')}]`;
  const incomplete = initStatuses.filter((s) => s.state?.terminated?.exitCode !== 0).map((s) => s.name);
  const status: V1PodStatus = {
    phase,
    conditions: [
      conditions.condition('Initialized', initialized, 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`),
      conditions.condition('Ready', ready, notReady, unreadyMessage),
      conditions.condition('ContainersReady', ready, notReady, unreadyMessage),
      conditions.condition('PodScheduled', true),
    ],
    hostIP: input.hostIP,
    startTime: input.startTime,
    containerStatuses,
    qosClass: input.qosClass,
  };
  if (initStatuses.length > 0) status.initContainerStatuses = initStatuses;
  if (input.podIP !== '') {
    status.podIP = input.podIP;
    status.podIPs = [{ ip: input.podIP }];
  }
  return status;
}

/** The kubelet's getPhase (pkg/kubelet/kubelet_pods.go, 1.20) over the app containers' statuses. */
export function podPhase(statuses: V1ContainerStatus[], restartPolicy: string): string {
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const status of statuses) {
    if (status.state?.running !== undefined) running += 1;
    else if (status.state?.terminated !== undefined) {
      stopped += 1;
      if (status.state.terminated.exitCode === 0) succeeded += 1;
    } else if (status.lastState?.terminated !== undefined) stopped += 1;
    else waiting += 1;
  }
  if (waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (restartPolicy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    return restartPolicy === 'OnFailure' ? 'Running' : 'Failed';
  }
  return 'Pending';
}

/** metav1.Time has whole seconds; a status with the same second must compare equal to the last one sent. */
export function rfc3339(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
