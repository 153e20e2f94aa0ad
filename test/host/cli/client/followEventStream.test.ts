import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { ApiClient } from '../../../../host/src/cli/client/ApiClient.ts';
import { followEventStream } from '../../../../host/src/cli/client/followEventStream.ts';
import { within } from '../../../helpers/waitFor.ts';

/**
 * A real SSE server: it serves `seq` 0..9 from the position `Last-Event-ID` asks for, and drops the connection after
 * a few events on the first requests, as a proxy or a restarting host would.
 */
describe('followEventStream (real HTTP server that drops connections)', () => {
  let server: http.Server;
  let url: string;
  const requests: Array<{ path: string; lastEventId: string | undefined; authorization: string | undefined }> = [];
  let mode: 'drop' | 'error' | 'always-drop' | 'status' = 'drop';

  before(async () => {
    server = http.createServer((req, res) => {
      const lastEventId = req.headers['last-event-id'] as string | undefined;
      requests.push({ path: req.url ?? '', lastEventId, authorization: req.headers.authorization });
      if (mode === 'status') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'WM_ERR_NOT_FOUND', category: 'ClientValidation', message: 'no worker w-1', correlationId: 'c-1' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      // socket.end() flushes what was written, then closes mid-response: the client sees a truncated stream.
      if (mode === 'always-drop') return void res.socket?.end();
      let seq = lastEventId === undefined ? 0 : Number(lastEventId) + 1;
      const first = requests.length === 1;
      const burst = first ? 3 : requests.length === 2 ? 4 : 10;
      for (let n = 0; n < burst && seq < 10; n += 1, seq += 1) res.write(`id: ${seq}\r\nevent: log\r\ndata: {"seq":${seq},\r\ndata: "ok":true}\r\n\r\n`);
      if (seq < 10) {
        // A half-written event before the drop must not be delivered.
        res.write(`id: ${seq}\nevent: log\ndata: {"seq":${seq}`);
        res.socket?.end();
        return;
      }
      res.end(mode === 'error' ? 'event: error\ndata: {"code":"WM_ERR_TIMEOUT","category":"TransientInfrastructure","message":"provider stream failed","correlationId":"c-2"}\n\n' : 'event: end\ndata: {}\n\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('resumes after each dropped connection with Last-Event-ID: every event once, in order, then ends', async () => {
    requests.length = 0;
    mode = 'drop';
    const client = new ApiClient({ url, token: 'secret-token' });
    const reconnects: Array<string | undefined> = [];
    const seen: number[] = [];
    const following = (async () => {
      for await (const event of followEventStream(client, '/v1/workers/w-1/logs', {
        query: (last) => (last === undefined ? { follow: true, tailLines: 5 } : { follow: true }),
        reconnectDelayMs: 10,
        onReconnect: (last) => reconnects.push(last),
      })) {
        assert.equal(event.event, 'log');
        seen.push((JSON.parse(event.data) as { seq: number }).seq);
      }
    })();
    await within(following, () => `the stream to end, saw ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(reconnects, ['2', '6']);
    assert.deepEqual(requests.map((r) => r.lastEventId), [undefined, '2', '6']);
    // The first request carries the caller's query; resumed ones let Last-Event-ID say where to start.
    assert.equal(requests[0]?.path, '/v1/workers/w-1/logs?follow=true&tailLines=5');
    assert.equal(requests[1]?.path, '/v1/workers/w-1/logs?follow=true');
    assert.ok(requests.every((r) => r.authorization === 'Bearer secret-token'));
  });

  it('throws the coded error an `error` event carries', async () => {
    requests.length = 2;
    mode = 'error';
    const seen: number[] = [];
    await assert.rejects(
      within(
        (async () => {
          for await (const event of followEventStream(new ApiClient({ url }), '/x', { reconnectDelayMs: 10 })) seen.push((JSON.parse(event.data) as { seq: number }).seq);
        })(),
        'the stream to fail',
      ),
      (error: unknown) => isWorkerManagerError(error) && error.code === 'WM_ERR_TIMEOUT' && error.details?.['correlationId'] === 'c-2',
    );
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('gives up with HOST_ERR_CLI_UNREACHABLE after maxReconnects drops in a row', async () => {
    requests.length = 0;
    mode = 'always-drop';
    await assert.rejects(
      within(
        (async () => {
          for await (const _ of followEventStream(new ApiClient({ url }), '/x', { reconnectDelayMs: 5, maxReconnects: 2 })) assert.fail('no event expected');
        })(),
        'the stream to fail',
      ),
      (error: unknown) => isWorkerManagerError(error) && error.code === 'HOST_ERR_CLI_UNREACHABLE' && /after 2 attempts/.test(error.message),
    );
    assert.equal(requests.length, 3);
  });

  it('does not retry an HTTP error answer: it is the caller\'s (404 WM_ERR_NOT_FOUND)', async () => {
    requests.length = 0;
    mode = 'status';
    await assert.rejects(
      within(
        (async () => {
          for await (const _ of followEventStream(new ApiClient({ url }), '/x', { reconnectDelayMs: 5 })) assert.fail('no event expected');
        })(),
        'the stream to fail',
      ),
      (error: unknown) => isWorkerManagerError(error) && error.code === 'WM_ERR_NOT_FOUND' && error.details?.['httpStatus'] === 404,
    );
    assert.equal(requests.length, 1);
  });
});
