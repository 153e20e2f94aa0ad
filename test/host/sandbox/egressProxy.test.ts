import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { EgressProxy, parseEgressTarget, type EgressRefusal } from '../../../host/src/sandbox/egress/EgressProxy.ts';
import { startLoopbackRelay, type LoopbackRelay } from '../../../host/src/sandbox/egress/loopbackRelay.ts';
import { budget, waitFor, within } from '../../helpers/waitFor.ts';

const HTTPS_BODY = 'hello from the allowed https server';

interface Connect {
  status: number;
  socket: net.Socket;
  head: Buffer;
}

/** Sends a CONNECT through the relay, the way a plugin's HTTP client would with HTTPS_PROXY set. */
function connectVia(relayPort: number, target: string): Promise<Connect> {
  return new Promise((resolve, reject) => {
    const req = http.request({ method: 'CONNECT', host: '127.0.0.1', port: relayPort, path: target, agent: false });
    req.once('connect', (res: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      socket.on('error', () => {});
      resolve({ status: res.statusCode ?? 0, socket, head });
    });
    req.once('error', reject);
    req.end();
  });
}

/** Everything the socket delivers until the other side ends it, after the bytes that came with the answer. */
async function readToEnd(socket: net.Socket | tls.TLSSocket, head: Buffer = Buffer.alloc(0)): Promise<string> {
  const chunks: Buffer[] = [head];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function listening<T extends net.Server>(server: T, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closed(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP server that answers `got:<everything received>` once the client has ended its side. */
function replyAtEnd(): { server: net.Server; open: Set<net.Socket> } {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    socket.on('end', () => socket.end(`got:${received}`));
  });
  return { server, open };
}

/** A TCP server that greets and ends its side at once, then records what the client still sends. */
function endsFirst(): { server: net.Server; received: string[] } {
  const received: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('end', () => {
      received.push(text);
      socket.destroy();
    });
    socket.end('hello');
  });
  return { server, received };
}

/** A free port nobody listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listening(server, '127.0.0.1');
  await closed(server);
  return port;
}

describe('EgressProxy', { timeout: budget(120_000) }, () => {
  let dir: string;
  let ca: Buffer;
  let httpsServer: https.Server;
  let httpsPort: number;
  let collector: ReturnType<typeof replyAtEnd>;
  let collectorPort: number;
  let collector6: ReturnType<typeof replyAtEnd>;
  let collector6Port: number;
  let greeter: ReturnType<typeof endsFirst>;
  let greeterPort: number;
  let forbidden: net.Server;
  let forbiddenPort: number;
  let forbiddenConnections = 0;
  let deadPort: number;
  let proxy: EgressProxy;
  let relay: LoopbackRelay;
  const refused: EgressRefusal[] = [];
  const connected: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wm-egress-'));
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    ca = await readFile(join(dir, 'cert.pem'));
    httpsServer = https.createServer({ key: await readFile(join(dir, 'key.pem')), cert: ca }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(HTTPS_BODY) }).end(HTTPS_BODY);
    });
    httpsPort = await listening(httpsServer, '127.0.0.1');
    collector = replyAtEnd();
    collectorPort = await listening(collector.server, '127.0.0.1');
    collector6 = replyAtEnd();
    collector6Port = await listening(collector6.server, '::1');
    greeter = endsFirst();
    greeterPort = await listening(greeter.server, '127.0.0.1');
    forbidden = net.createServer((socket) => {
      forbiddenConnections += 1;
      socket.destroy();
    });
    forbiddenPort = await listening(forbidden, '127.0.0.1');
    deadPort = await closedPort();
    proxy = await EgressProxy.listen({
      socketPath: join(dir, 'egress.sock'),
      allow: [`127.0.0.1:${httpsPort}`, `LocalHost:${collectorPort}`, `127.0.0.1:${collectorPort}`, `[::1]:${collector6Port}`, `127.0.0.1:${deadPort}`, `127.0.0.1:${greeterPort}`],
      onRefused: (refusal) => void refused.push(refusal),
      onConnected: (target) => void connected.push(target),
    });
    relay = await startLoopbackRelay(proxy.socketPath);
  });

  after(async () => {
    await relay?.close();
    await proxy?.close();
    httpsServer?.closeAllConnections();
    await Promise.all([httpsServer, collector?.server, collector6?.server, greeter?.server, forbidden].filter((s) => s !== undefined).map(closed));
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('tunnels TLS to an allowed target: the client verifies the real server and reads its answer', async () => {
    const target = `127.0.0.1:${httpsPort}`;
    const { status, socket } = await within(connectVia(relay.port, target), 'the CONNECT answer');
    assert.equal(status, 200);
    assert.ok(connected.includes(target), `onConnected saw ${JSON.stringify(connected)}`);
    // No servername: an IP address is not a valid SNI name, and the identity check uses `host`.
    const secure = tls.connect({ socket, ca, host: '127.0.0.1' });
    await within(new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject)), 'the TLS handshake');
    assert.equal(secure.authorized, true);
    secure.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const answer = await within(readToEnd(secure), 'the HTTPS answer');
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(answer.endsWith(HTTPS_BODY), answer);
  });

  it('refuses a target outside the list with 403, never connects to it, and reports it', async () => {
    const target = `127.0.0.1:${forbiddenPort}`;
    const { status, socket, head } = await within(connectVia(relay.port, target), 'the CONNECT answer');
    assert.equal(status, 403);
    assert.match(await within(readToEnd(socket, head), 'the refusal body'), /not in this plugin's egress list/);
    assert.deepEqual(refused.filter((r) => r.target === target), [{ target, reason: 'not-allowed' }]);
    // The refusal is decided before any connect, so having its answer means no connect can follow.
    assert.equal(forbiddenConnections, 0);
  });

  it('answers any other method with 405 and reports it without the path, query or body', async () => {
    const { status, allow, body } = await within(
      new Promise<{ status: number; allow: string | undefined; body: string }>((resolve, reject) => {
        const req = http.request({ method: 'POST', host: '127.0.0.1', port: relay.port, path: 'http://example.com/login?token=hunter2', agent: false }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, allow: res.headers.allow, body: text }));
        });
        req.once('error', reject);
        req.end('password=hunter2');
      }),
      'the 405 answer',
    );
    assert.equal(status, 405);
    assert.equal(allow, 'CONNECT');
    assert.match(body, /only CONNECT/);
    const report = refused.find((r) => r.reason === 'bad-request' && r.target.startsWith('POST'));
    assert.deepEqual(report, { target: 'POST example.com', reason: 'bad-request' });
  });

  it('answers a CONNECT whose target is not host:port with 400 as a bad request', async () => {
    const { status, socket, head } = await within(connectVia(relay.port, 'example.com'), 'the CONNECT answer');
    assert.equal(status, 400);
    await within(readToEnd(socket, head), 'the end of the answer');
    assert.ok(refused.some((r) => r.target === 'example.com' && r.reason === 'bad-request'), JSON.stringify(refused));
  });

  it('answers 502 when an allowed target refuses the connection', async () => {
    const target = `127.0.0.1:${deadPort}`;
    const { status, socket, head } = await within(connectVia(relay.port, target), 'the CONNECT answer');
    assert.equal(status, 502);
    assert.match(await within(readToEnd(socket, head), 'the refusal body'), /could not connect/);
    assert.deepEqual(refused.filter((r) => r.target === target), [{ target, reason: 'connect-failed' }]);
    assert.ok(!connected.includes(target));
  });

  it('passes bytes sent along with the CONNECT first, and keeps a half-closed tunnel open for the reply', async () => {
    const target = `127.0.0.1:${collectorPort}`;
    const socket = net.connect({ host: '127.0.0.1', port: relay.port });
    socket.on('error', () => {});
    await within(new Promise((resolve) => socket.once('connect', resolve)), 'the relay connection');
    // One write, so the first payload bytes reach the proxy with the request (its `head`), before any answer.
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\nearly`);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    await waitFor(() => received.includes('\r\n\r\n'), 'the CONNECT answer');
    assert.match(received, /^HTTP\/1\.1 200 /);
    socket.end(' late');
    await within(new Promise((resolve) => socket.once('end', resolve)), 'the target to end the tunnel');
    assert.equal(received.slice(received.indexOf('\r\n\r\n') + 4), 'got:early late');
  });

  it('keeps a tunnel open towards a target that has ended its own side', async () => {
    const target = `127.0.0.1:${greeterPort}`;
    const socket = net.connect({ host: '127.0.0.1', port: relay.port, allowHalfOpen: true });
    socket.on('error', () => {});
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    await within(new Promise((resolve) => socket.once('end', resolve)), 'the target to end its side');
    assert.match(received, /^HTTP\/1\.1 200 [^]*\r\n\r\nhello$/);
    socket.end('after your end');
    await waitFor(() => greeter.received.length > 0, 'the target to read to the end');
    assert.deepEqual(greeter.received, ['after your end']);
  });

  it('compares host names case-insensitively and IPv6 addresses in their canonical form', async () => {
    for (const [asked, reported] of [
      [`localhost:${collectorPort}`, `localhost:${collectorPort}`],
      [`[0:0:0:0:0:0:0:1]:${collector6Port}`, `[::1]:${collector6Port}`],
    ] as const) {
      const { status, socket, head } = await within(connectVia(relay.port, asked), `the CONNECT answer for ${asked}`);
      assert.equal(status, 200, asked);
      socket.end(asked);
      assert.equal(await within(readToEnd(socket, head), `the reply through ${asked}`), `got:${asked}`);
      assert.ok(connected.includes(reported), `onConnected saw ${JSON.stringify(connected)}, expected ${reported}`);
    }
  });

  it('close() ends open tunnels, stops listening, and is safe to call twice', async (t) => {
    const own = await EgressProxy.listen({ socketPath: join(dir, 'closing.sock'), allow: [`127.0.0.1:${collectorPort}`] });
    const ownRelay = await startLoopbackRelay(own.socketPath);
    t.after(() => ownRelay.close());
    t.after(() => own.close());
    const { status, socket } = await within(connectVia(ownRelay.port, `127.0.0.1:${collectorPort}`), 'the CONNECT answer');
    assert.equal(status, 200);
    await waitFor(() => collector.open.size > 0, 'the tunnel to reach the target');
    const ended = new Promise((resolve) => socket.once('close', resolve));

    await within(Promise.all([own.close(), own.close()]), 'close()');
    assert.equal(existsSync(own.socketPath), false, 'the socket file is gone');
    await within(ended, 'the client end of the tunnel to close');
    await waitFor(() => collector.open.size === 0, () => `the target end of the tunnel to close (${collector.open.size} open)`);
    await assert.rejects(within(connectVia(ownRelay.port, `127.0.0.1:${collectorPort}`), 'a CONNECT after close'), /socket hang up|ECONNRESET/);
  });

  it('replaces a socket file left by a host that died, refuses any other file, and refuses a bad allow entry', async () => {
    const stale = join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await within(new Promise((resolve) => child.stdout.once('data', resolve)), 'the child to listen');
    child.kill('SIGKILL');
    await within(new Promise((resolve) => child.once('exit', resolve)), 'the child to die');
    const replaced = await EgressProxy.listen({ socketPath: stale, allow: [] });
    await replaced.close();

    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'keep me');
    await assert.rejects(EgressProxy.listen({ socketPath: file, allow: [] }), /exists and is not a socket/);
    assert.equal(await readFile(file, 'utf8'), 'keep me');
    await assert.rejects(EgressProxy.listen({ socketPath: join(dir, 'bad.sock'), allow: ['example.com'] }), /Egress target 'example\.com' is invalid: the port is missing/);
  });
});

describe('parseEgressTarget', () => {
  it('accepts host:port with a DNS name, an IPv4 address or a bracketed IPv6 address, normalised', () => {
    assert.deepEqual(parseEgressTarget('example.com:443'), { host: 'example.com', port: 443 });
    assert.deepEqual(parseEgressTarget('Api.Example.COM:8443'), { host: 'api.example.com', port: 8443 });
    assert.deepEqual(parseEgressTarget('127.0.0.1:8443'), { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(parseEgressTarget('[::1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseEgressTarget('[0:0:0:0:0:0:0:1]:443'), { host: '::1', port: 443 });
    assert.deepEqual(parseEgressTarget('[2001:DB8::1]:65535'), { host: '2001:db8::1', port: 65535 });
    assert.deepEqual(parseEgressTarget('nats:1'), { host: 'nats', port: 1 });
  });

  it('refuses anything else with an error that names the entry', () => {
    for (const bad of [
      'host', 'host:0', 'host:70000', ':80', 'a b:1', 'host:', 'host:080', 'host:+80', 'host:443/path', 'user@host:1',
      '*.example.com:443', '-host:1', 'host.:1', '127.1:80', '2130706433:80', '127.000.000.001:80', '::1:443',
      '[::1]443', '[::1]:', '[fe80::1%eth0]:443', '[example.com]:443', ` host:1`, 'host:1 ', '',
    ]) {
      assert.throws(() => parseEgressTarget(bad), (error: Error) => error.message.startsWith(`Egress target '${bad}' is invalid:`), bad);
    }
  });
});
