import net from 'node:net';
import { pipeline } from 'node:stream';

// This file runs inside the sandbox, next to the plugin: it imports only node: built-ins so that it loads without
// node_modules or the rest of the host.

/** A running relay from a TCP port on the sandbox's loopback to the egress proxy's unix socket. */
export interface LoopbackRelay {
  /** The port the relay listens on, on 127.0.0.1. */
  readonly port: number;
  /** Stops listening and destroys every relayed connection. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Listens on `127.0.0.1:port` and relays each TCP connection, byte for byte and in both directions, to the unix
 * socket at `socketPath`. Inside a sandbox whose network namespace has only loopback, this lets ordinary HTTP
 * clients reach the host's egress proxy through `HTTPS_PROXY=http://127.0.0.1:<port>`. The relay does not read what
 * it carries; the proxy decides what is allowed. When either side fails, both are destroyed; when one side ends
 * its writing, the other side's writing is ended too and replies still flow back.
 *
 * @param socketPath - Path of the egress proxy's unix socket, as seen inside the sandbox. It is connected to per
 * relayed connection, so it need not exist yet when the relay starts.
 * @param port - TCP port to listen on; 0 (the default) picks a free one.
 * @returns The relay, once it listens.
 * @throws Error when listening fails (for example EADDRINUSE).
 */
export async function startLoopbackRelay(socketPath: string, port = 0): Promise<LoopbackRelay> {
  const sockets = new Set<net.Socket>();
  let closing: Promise<void> | undefined;
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The pipelines act on errors; this keeps a late one from becoming an uncaught exception in the plugin's process.
    socket.on('error', () => {});
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    if (closing !== undefined) {
      client.destroy();
      return;
    }
    const upstream = net.connect({ path: socketPath, allowHalfOpen: true });
    track(upstream);
    pipeline(client, upstream, () => {});
    pipeline(upstream, client, () => {});
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
