import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type Docker from 'dockerode';
import { demux, startExec, type ExecSession } from './dockerExec.ts';

/** What the kubelet endpoints need from the agent: the Docker container behind a pod's container, and the pod IP. */
export interface KubeletBackend {
  docker: Docker;
  /** Undefined pod: 404. Undefined containerId: the container is not running yet (or never ran). */
  findContainer(namespace: string, pod: string, container: string, previous: boolean): { containerId?: string; waiting?: string } | undefined;
  podIP(namespace: string, pod: string): string | undefined;
  log(message: string): void;
}

/** The subset of the `ws` package (a dependency of @kubernetes/client-node, without type declarations here) used below. */
interface WebSocketLike {
  readonly protocol: string;
  send(data: Buffer): void;
  close(code?: number): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}
interface WebSocketServerLike {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, done: (ws: WebSocketLike) => void): void;
  close(): void;
}
interface WsModule {
  WebSocketServer: new (options: {
    noServer: true;
    perMessageDeflate: false;
    handleProtocols: (protocols: Set<string>) => string | false;
  }) => WebSocketServerLike;
}
const { WebSocketServer } = createRequire(import.meta.url)('ws') as WsModule;

/** The kubelet's channel protocol (k8s.io/apiserver/pkg/util/wsstream): 1 byte channel, then data; v4 carries a JSON Status. */
const CHANNEL_PROTOCOL = 'v4.channel.k8s.io';
const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const RESIZE = 4;

export interface KubeletServerOptions {
  key: Buffer;
  cert: Buffer;
  /** CA of the client certificate kube-apiserver presents (--kubelet-client-certificate). */
  clientCa: Buffer;
}

/**
 * The kubelet's HTTPS server (port 10250 on a real node), with the endpoints kube-apiserver proxies to:
 * containerLogs (plain body), exec and portForward (WebSocket, channel protocol v4). It requires a client certificate
 * signed by the cluster CA, as a kubelet with x509 authentication does.
 */
export class KubeletServer {
  readonly #backend: KubeletBackend;
  readonly #server: https.Server;
  readonly #wss: WebSocketServerLike;
  readonly #sockets = new Set<Duplex>();

  constructor(backend: KubeletBackend, options: KubeletServerOptions) {
    this.#backend = backend;
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(CHANNEL_PROTOCOL) ? CHANNEL_PROTOCOL : false),
    });
    this.#server = https.createServer({ key: options.key, cert: options.cert, ca: options.clientCa, requestCert: true, rejectUnauthorized: true });
    this.#server.on('request', (request: IncomingMessage, response: ServerResponse) => void this.#onRequest(request, response));
    this.#server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(request, socket, head));
    this.#server.on('connection', (socket: Duplex) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  /** Listens on 127.0.0.1 (the node's InternalIP) and returns the port to advertise in daemonEndpoints. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return (this.#server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    this.#wss.close();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'https://kubelet');
    const parts = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    try {
      if (request.method === 'GET' && url.pathname === '/healthz') {
        response.end('ok');
      } else if (request.method === 'GET' && parts[0] === 'containerLogs' && parts.length === 4) {
        await this.#containerLogs(parts[1] ?? '', parts[2] ?? '', parts[3] ?? '', url.searchParams, request, response);
      } else {
        reply(response, 404, '404 page not found');
      }
    } catch (error) {
      this.#backend.log(`kubelet ${request.url ?? ''}: ${error instanceof Error ? error.message : String(error)}`);
      if (!response.headersSent) reply(response, 500, error instanceof Error ? error.message : String(error));
      else response.destroy();
    }
  }

  async #containerLogs(namespace: string, pod: string, container: string, query: URLSearchParams, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const found = this.#backend.findContainer(namespace, pod, container, query.get('previous') === 'true');
    if (found === undefined) return reply(response, 404, `pod ${namespace}/${pod} not found`);
    if (found.containerId === undefined) {
      return reply(response, 400, found.waiting ?? `container "${container}" in pod "${pod}" is not available`);
    }
    const handle = this.#backend.docker.getContainer(found.containerId);
    const info = await handle.inspect();
    const follow = query.get('follow') === 'true';
    const options: { stdout: true; stderr: true; timestamps: boolean; tail?: number; since?: number } = {
      stdout: true,
      stderr: true,
      timestamps: query.get('timestamps') === 'true',
    };
    if (query.has('tailLines')) options.tail = Number(query.get('tailLines'));
    const since = sinceSeconds(query);
    if (since !== undefined) options.since = since;
    const limit = query.has('limitBytes') ? Number(query.get('limitBytes')) : Infinity;
    response.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    let written = 0;
    const write = (chunk: Buffer): boolean => {
      const room = limit - written;
      if (room <= 0) return false;
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      written += part.length;
      response.write(part);
      return written < limit;
    };
    if (!follow) {
      const buffer = (await handle.logs({ ...options, follow: false })) as Buffer;
      write(info.Config.Tty ? buffer : demux(buffer));
      response.end();
      return;
    }
    const stream = (await handle.logs({ ...options, follow: true })) as unknown as Readable;
    const out = new PassThrough();
    if (info.Config.Tty) stream.pipe(out);
    else this.#backend.docker.modem.demuxStream(stream, out, out);
    stream.on('end', () => out.end());
    out.on('data', (chunk: Buffer) => {
      if (!write(chunk)) stream.destroy();
    });
    // The client (through the apiserver) hanging up ends the follow, as with `kubectl logs -f` and Ctrl-C.
    request.on('close', () => stream.destroy());
    await finished(out).catch(() => undefined);
    response.end();
  }

  #onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? '/', 'https://kubelet');
    const parts = url.pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
    const refuse = (status: number, message: string): void => {
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Bad Request'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
    };
    if (parts[0] === 'exec' && parts.length === 4) {
      const found = this.#backend.findContainer(parts[1] ?? '', parts[2] ?? '', parts[3] ?? '', false);
      if (found === undefined) return refuse(404, `pod not found`);
      const containerId = found.containerId;
      if (containerId === undefined) return refuse(400, found.waiting ?? 'container not found');
      this.#wss.handleUpgrade(request, socket, head, (ws) => void this.#exec(ws, containerId, url.searchParams));
    } else if (parts[0] === 'portForward' && parts.length === 3) {
      const podIP = this.#backend.podIP(parts[1] ?? '', parts[2] ?? '');
      if (podIP === undefined) return refuse(404, 'pod not found');
      const ports = url.searchParams.getAll('port').map(Number);
      if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) return refuse(400, 'invalid port');
      this.#wss.handleUpgrade(request, socket, head, (ws) => this.#portForward(ws, podIP, ports));
    } else {
      refuse(404, '404 page not found');
    }
  }

  async #exec(ws: WebSocketLike, containerId: string, query: URLSearchParams): Promise<void> {
    const flag = (name: string): boolean => query.get(name) === '1' || query.get(name) === 'true';
    const tty = flag('tty');
    // Clients send stdin right after the handshake: listen at once and hold it until the exec has started.
    const early: Buffer[] = [];
    let session: ExecSession | undefined;
    let closed = false;
    const onFrame = (data: Buffer): void => {
      if (data.length === 0 || session === undefined) return;
      if (data[0] === STDIN) session.stream.write(data.subarray(1));
      else if (data[0] === RESIZE && tty) {
        const size = JSON.parse(data.subarray(1).toString('utf8')) as { Width: number; Height: number };
        void session.exec.resize({ w: size.Width, h: size.Height }).catch(() => undefined);
      }
    };
    ws.on('message', (data) => (session === undefined ? early.push(data) : onFrame(data)));
    ws.on('close', () => {
      closed = true;
      session?.stream.destroy();
    });
    ws.on('error', () => session?.stream.destroy());
    try {
      session = await startExec(this.#backend.docker, containerId, query.getAll('command'), { stdin: flag('input'), tty });
      if (closed) session.stream.destroy();
      const frame = (channel: number) => (chunk: Buffer) => ws.send(Buffer.concat([Buffer.from([channel]), chunk]));
      session.stdout.on('data', frame(STDOUT));
      session.stderr.on('data', frame(STDERR));
      for (const data of early.splice(0)) onFrame(data);
      const exitCode = await session.exitCode;
      await Promise.all([finished(session.stdout), finished(session.stderr)].map((p) => p.catch(() => undefined)));
      ws.send(Buffer.concat([Buffer.from([STATUS]), Buffer.from(JSON.stringify(execStatus(exitCode, query.getAll('command'))))]));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      ws.send(Buffer.concat([Buffer.from([STATUS]), Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError' }))]));
    }
    ws.close(1000);
  }

  /** Per port: data channel 2i, error channel 2i+1, each opened by the port as uint16 little-endian (kubelet v4). */
  #portForward(ws: WebSocketLike, podIP: string, ports: number[]): void {
    const connections: net.Socket[] = [];
    let open = ports.length;
    ports.forEach((port, index) => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16LE(port);
      ws.send(Buffer.concat([Buffer.from([index * 2]), prefix]));
      ws.send(Buffer.concat([Buffer.from([index * 2 + 1]), prefix]));
      // The kubelet dials the port inside the pod's network namespace; the agent dials the pod IP.
      const connection = net.connect({ host: podIP, port });
      connections[index] = connection;
      connection.on('data', (chunk: Buffer) => ws.send(Buffer.concat([Buffer.from([index * 2]), chunk])));
      connection.on('error', (error) => {
        const message = `error forwarding port ${port} to pod ${podIP}: ${error.message}`;
        ws.send(Buffer.concat([Buffer.from([index * 2 + 1]), Buffer.from(message)]));
      });
      connection.on('close', () => {
        open -= 1;
        if (open === 0) ws.close(1000);
      });
    });
    ws.on('message', (data) => {
      const index = data[0];
      if (index === undefined || index % 2 !== 0) return;
      connections[index / 2]?.write(data.subarray(1));
    });
    ws.on('close', () => connections.forEach((c) => c.destroy()));
    ws.on('error', () => connections.forEach((c) => c.destroy()));
  }
}

/** metav1.Status of an exec as the kubelet (remotecommand v4) writes it on the status channel. */
function execStatus(exitCode: number, command: string[]): Record<string, unknown> {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

function sinceSeconds(query: URLSearchParams): number | undefined {
  if (query.has('sinceSeconds')) return Math.floor(Date.now() / 1000) - Number(query.get('sinceSeconds'));
  if (query.has('sinceTime')) return Math.floor(Date.parse(query.get('sinceTime') ?? '') / 1000);
  return undefined;
}

function reply(response: ServerResponse, status: number, message: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  response.end(message);
}
