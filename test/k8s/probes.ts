import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { V1Container, V1ContainerPort, V1Probe } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { execInContainer } from './dockerExec.ts';

/** Where a probe runs: the container (exec) and its pod IP (httpGet, tcpSocket). */
export interface ProbeTarget {
  docker: Docker;
  containerId: string;
  podIP: string;
  ports: V1ContainerPort[];
}

/** One probe attempt, with the kubelet's rules: exec exit 0, HTTP 200-399, TCP connect; each within timeoutSeconds. */
export async function probeOnce(probe: V1Probe, target: ProbeTarget): Promise<{ success: boolean; message: string }> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.exec !== undefined) {
      const result = await execInContainer(target.docker, target.containerId, probe.exec.command ?? [], timeoutMs);
      if (result.timedOut) return { success: false, message: `command timed out after ${timeoutMs / 1000}s` };
      return { success: result.exitCode === 0, message: result.output.slice(-1024) };
    }
    if (probe.httpGet !== undefined) {
      const get = probe.httpGet;
      const port = resolvePort(get.port, target.ports);
      const scheme = (get.scheme ?? 'HTTP').toUpperCase();
      const headers = Object.fromEntries((get.httpHeaders ?? []).map((h) => [h.name, h.value]));
      headers['User-Agent'] ??= 'kube-probe/1.20';
      const status = await new Promise<number>((resolve, reject) => {
        const request = (scheme === 'HTTPS' ? https : http).get(
          { host: get.host ?? target.podIP, port, path: get.path ?? '/', headers, timeout: timeoutMs, rejectUnauthorized: false },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        request.on('timeout', () => request.destroy(new Error(`timeout after ${timeoutMs} ms`)));
        request.on('error', reject);
      });
      return { success: status >= 200 && status < 400, message: `HTTP probe returned ${status}` };
    }
    if (probe.tcpSocket !== undefined) {
      const port = resolvePort(probe.tcpSocket.port, target.ports);
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host: probe.tcpSocket?.host ?? target.podIP, port, timeout: timeoutMs });
        socket.on('connect', () => {
          socket.destroy();
          resolve();
        });
        socket.on('timeout', () => socket.destroy(new Error(`timeout after ${timeoutMs} ms`)));
        socket.on('error', reject);
      });
      return { success: true, message: '' };
    }
    return { success: false, message: 'probe has no handler' };
  } catch (error) {
    return { success: false, message: error instanceof Error ? error.message : String(error) };
  }
}

function resolvePort(port: number | string, ports: V1ContainerPort[]): number {
  if (typeof port === 'number') return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  const named = ports.find((p) => p.name === port);
  if (named === undefined) throw new Error(`named port ${port} not found in the container's ports`);
  return named.containerPort;
}

/**
 * Runs one probe of one container on the kubelet's schedule (initialDelaySeconds, then every periodSeconds) and
 * reports a result only when the success or failure threshold is crossed, as the kubelet's prober worker does.
 */
export class ProbeLoop {
  readonly #probe: V1Probe;
  readonly #target: ProbeTarget;
  readonly #onResult: (success: boolean, message: string) => void;
  #result: boolean | undefined;
  #successes = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(probe: V1Probe, target: ProbeTarget, initial: boolean | undefined, onResult: (success: boolean, message: string) => void) {
    this.#probe = probe;
    this.#target = target;
    this.#result = initial;
    this.#onResult = onResult;
  }

  start(): void {
    this.#schedule((this.#probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    const { success, message } = await probeOnce(this.#probe, this.#target);
    if (this.#stopped) return;
    if (success) {
      this.#successes += 1;
      this.#failures = 0;
    } else {
      this.#failures += 1;
      this.#successes = 0;
    }
    if (success && this.#result !== true && this.#successes >= (this.#probe.successThreshold ?? 1)) {
      this.#result = true;
      this.#onResult(true, message);
    } else if (!success && this.#result !== false && this.#failures >= (this.#probe.failureThreshold ?? 3)) {
      this.#result = false;
      this.#onResult(false, message);
    }
    this.#schedule((this.#probe.periodSeconds ?? 10) * 1000);
  }
}

/** What a container's probes report to the pod worker. */
export interface ContainerProbeHandlers {
  /** The readiness result changed (with the failing attempt's output). */
  ready(success: boolean, message: string): void;
  /** The startup probe succeeded (readiness and liveness start only now). */
  started(): void;
  /** Liveness or startup failed past its threshold: the kubelet kills the container. */
  failed(why: string): void;
}

/**
 * Runs a container's probes as the kubelet's prober manager does: the startup probe first; once it succeeds, readiness
 * (initially failing) and liveness (initially succeeding). Returns the function that stops them all.
 */
export function startContainerProbes(spec: V1Container, target: ProbeTarget, handlers: ContainerProbeHandlers): () => void {
  const loops: ProbeLoop[] = [];
  const run = (loop: ProbeLoop): void => {
    loops.push(loop);
    loop.start();
  };
  const afterStartup = (): void => {
    if (spec.readinessProbe !== undefined) run(new ProbeLoop(spec.readinessProbe, target, false, (success, message) => handlers.ready(success, message)));
    if (spec.livenessProbe !== undefined) {
      run(
        new ProbeLoop(spec.livenessProbe, target, true, (success, message) => {
          if (!success) handlers.failed(`liveness probe failed: ${message}`);
        }),
      );
    }
  };
  if (spec.startupProbe !== undefined) {
    const startup = new ProbeLoop(spec.startupProbe, target, false, (success, message) => {
      if (!success) return handlers.failed(`startup probe failed: ${message}`);
      startup.stop();
      handlers.started();
      afterStartup();
    });
    run(startup);
  } else afterStartup();
  return () => {
    for (const loop of loops) loop.stop();
  };
}
