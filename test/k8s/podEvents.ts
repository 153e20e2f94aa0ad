import { randomBytes } from 'node:crypto';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';

export type EventType = 'Normal' | 'Warning';

/**
 * Records the kubelet's pod events (Pulled, Created, Started, Killing, BackOff, Unhealthy, FailedMount, ...) in the
 * pod's namespace with `source.component: kubelet`, so what `kubectl describe pod` shows (and a provider that reports
 * why a worker is stuck) reads the same as on a real node. Recording is best effort, as in the kubelet.
 */
export class PodEvents {
  readonly #core: CoreV1Api;
  readonly #nodeName: string;
  readonly #log: (message: string) => void;

  constructor(core: CoreV1Api, nodeName: string, log: (message: string) => void) {
    this.#core = core;
    this.#nodeName = nodeName;
    this.#log = log;
  }

  /** `container` sets involvedObject.fieldPath to spec.containers{name} (or spec.initContainers{name}), as the kubelet does. */
  record(pod: V1Pod, type: EventType, reason: string, message: string, container?: { name: string; init: boolean }): void {
    const { name = '', namespace = 'default', uid } = pod.metadata ?? {};
    const now = new Date();
    void this.#core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${name}.${randomBytes(8).toString('hex')}`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name,
            namespace,
            uid,
            resourceVersion: pod.metadata?.resourceVersion,
            fieldPath: container === undefined ? undefined : `spec.${container.init ? 'initContainers' : 'containers'}{${container.name}}`,
          },
          reason,
          message,
          type,
          source: { component: 'kubelet', host: this.#nodeName },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      })
      .catch((error: unknown) => this.#log(`event ${reason} for ${namespace}/${name}: ${error instanceof Error ? error.message : String(error)}`));
  }
}
