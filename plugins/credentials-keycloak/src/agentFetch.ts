import https from 'node:https';

/** The part of `fetch` the plugin uses: a URL string and method, headers, body and signal. */
export type HttpFetch = (url: string, init: RequestInit) => Promise<Response>;

function bodyText(body: RequestInit['body']): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  throw new TypeError('agentFetch sends string and form bodies only');
}

/**
 * A `fetch` over `node:https` with an agent. Node 20's own fetch ignores `HTTPS_PROXY` and takes no CA, so the
 * plugin uses this when it must reach Keycloak through the restricted tier's egress proxy (the SDK's `egressAgent`)
 * or trust a private CA (`caFile`). Only what openid-client and the admin calls need: https, string or form bodies.
 */
export function agentFetch(agent: https.Agent): HttpFetch {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const headers = new Headers(init.headers);
      const body = bodyText(init.body);
      if (init.body instanceof URLSearchParams && !headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
      if (body !== undefined) headers.set('content-length', String(Buffer.byteLength(body)));
      // As Node's fetch does: a failed request is a TypeError whose cause is the socket error (an abort stays itself).
      const fail = (error: Error): void => reject(error.name === 'AbortError' ? error : new TypeError('fetch failed', { cause: error }));
      const request = https.request(url, { method: init.method ?? 'GET', headers: Object.fromEntries(headers), agent, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('error', fail);
        res.once('end', () => {
          const out = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(name, v);
          }
          const status = res.statusCode ?? 500;
          resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers: out }));
        });
      });
      request.once('error', fail);
      request.end(body);
    });
}
