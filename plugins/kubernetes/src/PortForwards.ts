import net from 'node:net';
import { PortForward, type KubeConfig } from '@kubernetes/client-node';
import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';

interface Forward {
  server: net.Server;
  sockets: Set<net.Socket>;
  endpoint: string;
  workerId: string;
  key: string;
}

export interface PortForwardsOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  podName(workerId: string): string;
  /** False once the worker's pod is gone or ended: its forwards close. */
  isAlive(workerId: string): Promise<boolean>;
  logger: PluginLogger;
  checkMs?: number;
}

/**
 * Local TCP endpoints that reach a worker's port through the apiserver's portforward subresource (client-node's
 * `PortForward`, WebSocket): `127.0.0.1:<port>` accepts connections, each one its own port-forward stream to the pod.
 * Owned by one plugin thread; closed on terminate through this thread, when a check finds the pod gone or ended, or
 * when the thread closes.
 */
export class PortForwards {
  readonly #o: PortForwardsOptions;
  readonly #forwards = new Map<string, Forward>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: PortForwardsOptions) {
    this.#o = options;
    this.#timer = setInterval(() => void this.#check(), options.checkMs ?? 1_000);
    this.#timer.unref();
  }

  async open(workerId: string, remotePort: number, localPort: number | undefined): Promise<string> {
    const key = `${workerId}:${remotePort}:${localPort ?? 0}`;
    const existing = this.#forwards.get(key);
    if (existing !== undefined) return existing.endpoint;
    const sockets = new Set<net.Socket>();
    const forwarder = new PortForward(this.#o.kubeConfig);
    const server = net.createServer((client) => {
      sockets.add(client);
      const drop = (): void => {
        client.destroy();
        sockets.delete(client);
      };
      client.on('error', drop).on('close', drop);
      forwarder.portForward(this.#o.namespace, this.#o.podName(workerId), [remotePort], client, null, client).then(
        (ws) => {
          if (typeof ws === 'function') return;
          ws.on('close', drop);
          client.on('close', () => ws.close());
        },
        (error: unknown) => {
          this.#o.logger.warn('kubernetes provider: port-forward stream failed', { workerId, remotePort, error: error instanceof Error ? error.message : String(error) });
          drop();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause) =>
        reject(new WorkerManagerError('WM_ERR_CONFLICT', `portForward: cannot listen on 127.0.0.1:${localPort ?? 0}`, { cause, details: { workerId, localPort } })),
      );
      server.listen(localPort ?? 0, '127.0.0.1', () => resolve());
    });
    const endpoint = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    this.#forwards.set(key, { server, sockets, endpoint, workerId, key });
    return endpoint;
  }

  closeWorker(workerId: string): void {
    for (const f of [...this.#forwards.values()]) if (f.workerId === workerId) this.#close(f);
  }

  closeAll(): void {
    clearInterval(this.#timer);
    for (const f of [...this.#forwards.values()]) this.#close(f);
  }

  #close(f: Forward): void {
    this.#forwards.delete(f.key);
    f.server.close();
    for (const s of f.sockets) s.destroy();
  }

  async #check(): Promise<void> {
    const workers = new Set([...this.#forwards.values()].map((f) => f.workerId));
    for (const workerId of workers) {
      const alive = await this.#o.isAlive(workerId).catch(() => true);
      if (!alive) this.closeWorker(workerId);
    }
  }
}
