import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** Options of {@link egressAgent}: those of an `https.Agent`, plus the proxy to tunnel through. */
export interface EgressAgentOptions extends https.AgentOptions {
  /**
   * The egress proxy, as `http://host:port`. Default: `HTTPS_PROXY` (or `https_proxy`) from the environment, which the
   * host sets for a restricted instance that has an `egress` list. Without either, connections go direct.
   */
  proxy?: string;
}

/**
 * An `https.Agent` that reaches its targets through the instance's egress proxy, for HTTP clients that ignore
 * `HTTPS_PROXY` (Node's own `https.request`, and libraries built on it that take an `agent`).
 *
 * A restricted plugin instance has no network interface: its only way out is the host's egress proxy, which accepts an
 * HTTP `CONNECT host:port` for the pairs listed in the instance's `egress` and refuses the rest (403). This agent sends
 * that `CONNECT` and runs TLS over the tunnel, so certificates are checked end to end as usual.
 *
 * @example
 * ```ts
 * import https from 'node:https';
 * import { egressAgent } from '@worker-manager/plugin-sdk';
 * const agent = egressAgent();
 * https.get('https://api.example.com/v1/things', { agent }, (res) => { ... });
 * ```
 */
export function egressAgent(options: EgressAgentOptions = {}): https.Agent {
  return new EgressAgent(options);
}

class EgressAgent extends https.Agent {
  readonly #proxy: URL | undefined;

  constructor(options: EgressAgentOptions) {
    const { proxy, ...agentOptions } = options;
    super(agentOptions);
    const from = proxy ?? process.env['HTTPS_PROXY'] ?? process.env['https_proxy'];
    this.#proxy = from === undefined || from === '' ? undefined : new URL(from);
  }

  override createConnection(requestOptions: http.RequestOptions, callback?: (error: Error | null, socket: Duplex) => void): Duplex | undefined {
    // The agent hands its TLS options (ca, rejectUnauthorized, servername) along with the request's.
    const options = requestOptions as tls.ConnectionOptions & { host?: string; port?: number; servername?: string };
    const proxy = this.#proxy;
    if (proxy === undefined) return tls.connect(options);
    const host = options.host ?? 'localhost';
    const port = options.port ?? 443;
    const fail = (error: Error): void => callback?.(error, undefined as unknown as Duplex);
    const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const request = http.request({ host: proxy.hostname, port: proxy.port === '' ? 80 : Number(proxy.port), method: 'CONNECT', path: authority, headers: { host: authority } });
    request.once('connect', (response, socket) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        fail(new Error(`the egress proxy refused ${authority} (HTTP ${String(response.statusCode)}): it is not in this instance's egress list`));
        return;
      }
      callback?.(null, tls.connect({ ...options, socket, servername: options.servername ?? (host.includes(':') ? undefined : host) }));
    });
    request.once('error', fail);
    request.end();
    return undefined;
  }
}
