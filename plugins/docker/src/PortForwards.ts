import net from 'node:net';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';

interface Forward {
  server: net.Server;
  sockets: Set<net.Socket>;
  endpoint: string;
  workerId: string;
  key: string;
}

/**
 * Local TCP endpoints that reach a worker's port, owned by one plugin thread: `127.0.0.1:<port>` accepts
 * connections and pipes each to `<container ip>:<remote port>`. Closed when the worker is terminated through this
 * thread, when a check finds the container gone or stopped, or when the thread closes.
 */
export class PortForwards {
  readonly #forwards = new Map<string, Forward>();
  readonly #isAlive: (workerId: string) => Promise<boolean>;
  #timer: NodeJS.Timeout | undefined;

  constructor(isAlive: (workerId: string) => Promise<boolean>, checkMs = 1_000) {
    this.#isAlive = isAlive;
    this.#timer = setInterval(() => void this.#check(), checkMs);
    this.#timer.unref();
  }

  /** Opens (or returns the open) forward of `workerId:remotePort` to `target`. */
  async open(workerId: string, target: { host: string; port: number }, localPort: number | undefined): Promise<string> {
    const key = `${workerId}:${target.port}:${localPort ?? 0}`;
    const existing = this.#forwards.get(key);
    if (existing !== undefined) return existing.endpoint;
    const sockets = new Set<net.Socket>();
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (cause) =>
        reject(new WorkerManagerError('WM_ERR_CONFLICT', `portForward: cannot listen on 127.0.0.1:${localPort ?? 0}`, { cause, details: { workerId, localPort } })),
      );
      server.listen(localPort ?? 0, '127.0.0.1', () => resolve());
    });
    const address = server.address() as net.AddressInfo;
    const endpoint = `127.0.0.1:${address.port}`;
    this.#forwards.set(key, { server, sockets, endpoint, workerId, key });
    return endpoint;
  }

  /** Closes every forward of a worker. */
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
    const ids = new Set([...this.#forwards.values()].map((f) => f.workerId));
    for (const id of ids) {
      try {
        if (!(await this.#isAlive(id))) this.closeWorker(id);
      } catch {
        // the engine is unreachable: keep the forward, the next check decides
      }
    }
  }
}
