import { chmod, lstat, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { pipeline } from 'node:stream';

/** One `host:port` pair a restricted instance may reach, as the host will connect to it. */
export interface EgressTarget {
  /** Lower-case host name, dotted IPv4 address, or compressed IPv6 address without brackets. */
  readonly host: string;
  /** 1..65535. */
  readonly port: number;
}

/** Why the proxy refused a request. */
export type EgressRefusalReason = 'not-allowed' | 'bad-request' | 'connect-failed';

/** A refused request, as reported to {@link EgressProxyOptions.onRefused}. */
export interface EgressRefusal {
  /**
   * What the request asked for: the normalised `host:port` of a CONNECT, the CONNECT target as sent (cut to 200
   * characters) when it does not parse, `METHOD host` for another method, or `''` when the request did not parse.
   * Never a path, query or body.
   */
  readonly target: string;
  readonly reason: EgressRefusalReason;
}

/** Options of {@link EgressProxy.listen}. */
export interface EgressProxyOptions {
  /** Path of the unix socket to listen on. A stale socket file there is replaced; any other file is an error. */
  readonly socketPath: string;
  /** `host:port` entries (see {@link parseEgressTarget}); a CONNECT must name one of them exactly. */
  readonly allow: readonly string[];
  /** Called once per refused request. Exceptions it throws are ignored. */
  onRefused?(refusal: EgressRefusal): void;
  /** Called with the normalised `host:port` once a tunnel is open. Exceptions it throws are ignored. */
  onConnected?(target: string): void;
  /** How long the host may take to connect to a target before the CONNECT fails with 502. Default 10 000 ms. */
  readonly connectTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const MAX_REPORTED_TARGET = 200;
const PORT = /^[1-9][0-9]{0,4}$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * Parses one egress allow-list entry or CONNECT target: `host:port`, where host is a DNS name (letters, digits and
 * inner hyphens per label; compared case-insensitively), a dotted-quad IPv4 address, or an IPv6 address in brackets
 * (`[::1]:443`); port is a decimal number 1..65535 without leading zeros. Wildcards, zone ids, user info, paths and
 * whitespace are refused. The host is returned in lower case, IPv6 compressed and without brackets, so two spellings
 * of one address give equal results.
 *
 * The name is resolved by the host at connect time, not by the sandbox: `127.0.0.1:4222` is the host's loopback.
 *
 * @param s - The entry, for example `example.com:443`, `127.0.0.1:8443` or `[::1]:443`.
 * @returns The host and port.
 * @throws Error naming the entry and what is wrong with it.
 */
export function parseEgressTarget(s: string): EgressTarget {
  const fail = (why: string): never => {
    throw new Error(`Egress target '${s}' is invalid: ${why}; expected host:port, for example example.com:443 or [::1]:443`);
  };
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') fail('an IPv6 address in brackets must be followed by :port');
    const inner = s.slice(1, close);
    if (inner.includes('%') || !net.isIPv6(inner)) fail(`'${inner}' is not an IPv6 address`);
    // WHATWG URL serialises IPv6 in its compressed form, so [0:0::1] and [::1] compare equal.
    host = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
    portText = s.slice(close + 2);
  } else {
    const colon = s.indexOf(':');
    if (colon < 0) fail('the port is missing');
    if (s.indexOf(':', colon + 1) >= 0) fail('an IPv6 address needs brackets');
    host = s.slice(0, colon).toLowerCase();
    portText = s.slice(colon + 1);
    if (host === '') fail('the host is missing');
    if (!HOST_NAME.test(host)) fail(`'${host}' is not a host name or IPv4 address`);
    // Resolvers read an all-digit last label as a number (127.1, 2130706433), so only a plain dotted quad may look
    // like an address: otherwise two different spellings would reach the same host.
    if (/(?:^|\.)[0-9]+$/.test(host) && !net.isIPv4(host)) fail(`'${host}' is not a dotted-quad IPv4 address`);
  }
  if (!PORT.test(portText) || Number(portText) > 65_535) fail(`'${portText}' is not a port number 1..65535`);
  return { host, port: Number(portText) };
}

/** The canonical `host:port` text of a parsed target, the form allow entries are compared in. */
function formatEgressTarget(target: EgressTarget): string {
  return target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
}

/**
 * The host end of a restricted instance's network egress: an HTTP proxy on a unix socket that only opens CONNECT
 * tunnels to the `host:port` pairs of its allow list. The socket is bind-mounted into the instance's sandbox, which
 * has no other network, so this list is the instance's whole outside world.
 */
export class EgressProxy {
  /** The unix socket the proxy listens on. */
  readonly socketPath: string;
  readonly #server: http.Server;
  readonly #allowed: ReadonlySet<string>;
  readonly #options: EgressProxyOptions;
  readonly #connectTimeoutMs: number;
  readonly #sockets = new Set<net.Socket>();
  #closing: Promise<void> | undefined;

  private constructor(options: EgressProxyOptions, allowed: ReadonlySet<string>) {
    this.socketPath = options.socketPath;
    this.#options = options;
    this.#allowed = allowed;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#server = http.createServer();
    this.#server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.#connect(req, socket, head));
    this.#server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#refuseRequest(req, res));
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket: net.Socket) => this.#refuseUnparsable(error, socket));
  }

  /**
   * Starts a proxy listening on `options.socketPath` (mode 0666, since the sandboxed instance runs as another uid;
   * the folder holding the socket is what limits who reaches it).
   *
   * @param options - Socket path, allow list, observers and connect timeout.
   * @returns The listening proxy.
   * @throws Error when an allow entry is invalid (see {@link parseEgressTarget}), when a file other than a socket
   * exists at the path, or when listening fails.
   */
  static async listen(options: EgressProxyOptions): Promise<EgressProxy> {
    const allowed = new Set(options.allow.map((entry) => formatEgressTarget(parseEgressTarget(entry))));
    await removeStaleSocket(options.socketPath);
    const proxy = new EgressProxy(options, allowed);
    const server = proxy.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      await chmod(options.socketPath, 0o666);
    } catch (error) {
      await proxy.close();
      throw error;
    }
    return proxy;
  }

  /** Stops listening and destroys every open tunnel and connection. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      // The callback's error only says the server was not listening; either way it is closed now.
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
      for (const socket of this.#sockets) socket.destroy();
    });
    return this.#closing;
  }

  #connect(req: http.IncomingMessage, client: net.Socket, head: Buffer): void {
    // The HTTP server drops its own listeners from a CONNECT socket; without one an error here would crash the host.
    this.#track(client);
    const raw = req.url ?? '';
    let target: EgressTarget;
    try {
      target = parseEgressTarget(raw);
    } catch {
      this.#notifyRefused(raw.slice(0, MAX_REPORTED_TARGET), 'bad-request');
      refuseTunnel(client, 400, 'Bad Request', 'egress proxy: the CONNECT target must be host:port\n');
      return;
    }
    const key = formatEgressTarget(target);
    if (!this.#allowed.has(key)) {
      this.#notifyRefused(key, 'not-allowed');
      refuseTunnel(client, 403, 'Forbidden', `egress proxy: ${key} is not in this plugin's egress list\n`);
      return;
    }

    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.#track(upstream);
    let open = false;
    const abandon = (): void => void upstream.destroy();
    client.once('close', abandon);
    upstream.setTimeout(this.#connectTimeoutMs, () => upstream.destroy(new Error(`connect to ${key} timed out`)));
    upstream.once('error', () => {
      if (open) return;
      client.off('close', abandon);
      this.#notifyRefused(key, 'connect-failed');
      refuseTunnel(client, 502, 'Bad Gateway', `egress proxy: could not connect to ${key}\n`);
    });
    upstream.once('connect', () => {
      open = true;
      client.off('close', abandon);
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      // Two pipelines keep half-close (a client that ends its side still gets the reply) and destroy both sockets
      // when either fails.
      pipeline(client, upstream, () => {});
      pipeline(upstream, client, () => {});
      this.#notify(() => this.#options.onConnected?.(key));
    });
  }

  #refuseRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#notifyRefused(describeRequest(req), 'bad-request');
    const body = 'egress proxy: only CONNECT is supported; use https:// or a client that tunnels\n';
    res.writeHead(405, { allow: 'CONNECT', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  }

  #refuseUnparsable(error: NodeJS.ErrnoException, socket: net.Socket): void {
    // Resets and timeouts are the peer going away, not a request the proxy refused.
    if (error.code?.startsWith('HPE_') === true) {
      this.#notifyRefused('', 'bad-request');
      if (socket.writable) {
        socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        socket.destroySoon();
        return;
      }
    }
    socket.destroy();
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    // The pipelines and the connect handler act on errors; this keeps a late one from becoming an uncaught exception.
    socket.on('error', () => {});
    if (this.#closing !== undefined) socket.destroy();
  }

  #notifyRefused(target: string, reason: EgressRefusalReason): void {
    this.#notify(() => this.#options.onRefused?.({ target, reason }));
  }

  #notify(observe: () => void): void {
    try {
      observe();
    } catch {
      // A plugin decides when these observers run; a throwing one must not become an uncaught exception in the host.
    }
  }
}

/** Answers a CONNECT that gets no tunnel and closes the socket once the answer is written. */
function refuseTunnel(client: net.Socket, status: number, statusText: string, body: string): void {
  if (client.destroyed) return;
  // Reading what the client already sent keeps the kernel from answering the close with a reset that could discard
  // the response before the client reads it.
  client.resume();
  client.end(`HTTP/1.1 ${status} ${statusText}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  client.destroySoon();
}

/** `METHOD host` of a non-CONNECT request: enough to see what a plugin tried, without its path or query. */
function describeRequest(req: http.IncomingMessage): string {
  let host = '';
  try {
    host = new URL(req.url ?? '').host;
  } catch {
    // An origin-form URL ('/path') has no host of its own.
  }
  return `${req.method ?? ''} ${host}`.trim().slice(0, MAX_REPORTED_TARGET);
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  // A socket left behind by a host that died would make listen fail with EADDRINUSE; the folder is per instance, so
  // nothing else listens there.
  if (!stats.isSocket()) throw new Error(`Egress proxy socket path '${socketPath}' exists and is not a socket`);
  await unlink(socketPath);
}
