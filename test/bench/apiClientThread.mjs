// A client of the bad-input bench in a thread of its own, as callers of a real host are in processes of their own:
// the host's thread then does the host's work only (sending 900 KB bodies, or reading a listing's answer chunk by
// chunk, would otherwise wait on the host's event loop and be counted against it). node:http with kept-alive sockets
// and bodies encoded once, so the client takes as little of the machine as it can.
// workerData: { apiUrl, authorization, requests: [{ method, url, body?, contentType?, headers? }], inFlight }.
// A message { total } sends `total` requests (cycling through `requests`), `inFlight` at a time; { total: null } sends
// them until a message { stop: true }. Either way the answer is
// { statuses: [[status, count], ...], latenciesMs: [...], itemCounts: [...] }: status 0 is a request that got no
// answer (the connection failed), and itemCounts the distinct lengths of `items` in the JSON answers that had one.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { apiUrl, authorization, inFlight } = workerData;
const api = new URL(apiUrl);
const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
const requests = workerData.requests.map((r) => {
  const body = r.body === undefined ? undefined : Buffer.from(r.body, 'utf8');
  const headers = { authorization, ...r.headers };
  if (body !== undefined) Object.assign(headers, { 'content-type': r.contentType ?? 'application/json', 'content-length': body.length });
  return { method: r.method, path: r.url, headers, body };
});
let cycle = 0;
let stopping = false;

function send(request) {
  return new Promise((resolve) => {
    const req = http.request({ host: api.hostname, port: api.port, agent, method: request.method, path: request.path, headers: request.headers }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        let items;
        try {
          items = JSON.parse(Buffer.concat(chunks).toString('utf8')).items?.length;
        } catch {
          items = undefined;
        }
        resolve({ status: res.statusCode ?? 0, items });
      });
      res.on('error', () => resolve({ status: 0, items: undefined }));
    });
    req.on('error', () => resolve({ status: 0, items: undefined }));
    req.end(request.body);
  });
}

async function run(total) {
  const statuses = new Map();
  const latenciesMs = [];
  const itemCounts = new Set();
  let sent = 0;
  const more = () => (total === null ? !stopping : sent < total);
  const lane = async () => {
    while (more()) {
      sent++;
      const start = performance.now();
      const { status, items } = await send(requests[cycle++ % requests.length]);
      latenciesMs.push(performance.now() - start);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (items !== undefined) itemCounts.add(items);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  stopping = false;
  parentPort.postMessage({ statuses: [...statuses], latenciesMs, itemCounts: [...itemCounts] });
}

parentPort.on('message', (message) => {
  if (message.stop === true) stopping = true;
  else void run(message.total);
});
