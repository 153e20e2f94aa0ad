import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { parseConfig } from '../../../host/src/config/loadConfig.ts';
import { processProviderYaml, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor, within } from '../../helpers/waitFor.ts';
import { parseSseBlock, type SseEvent } from './sseClient.ts';

const hostYaml = (id: string, port: number): string => `
host: { id: ${id}, stateDir: \${DIR}/state }
api: { enabled: true, port: ${port} }
${processProviderYaml()}`;

/** The local admin token of the host started last (the API refuses /v1 calls without it). */
let token = '';
/** `?wait=running` with a budget the API accepts (at most 600 s). */
const waitRunning = `?wait=running&waitTimeoutMs=${Math.min(budget(60_000), 600_000)}`;
async function useTokenOf(t: TestHost): Promise<void> {
  token = (await readFile(path.join(t.dir, 'state', 'admin.token'), 'utf8')).trim();
}
/** fetch with the local admin token. */
const authFetch = (url: string, init: RequestInit = {}): Promise<Response> =>
  fetch(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` } });

/**
 * A minimal EventSource over node:http: collects events until `enough` says so, then drops the connection, as a
 * client that goes away would. Resolves early when the server ends the stream or the connection drops.
 */
function readSse(url: string, options: { lastEventId?: string; enough: (events: SseEvent[]) => boolean; onOpen?: (req: http.ClientRequest) => void }): Promise<{ events: SseEvent[]; status: number; ended: boolean; correlationId: string | undefined }> {
  const reading = new Promise<{ events: SseEvent[]; status: number; ended: boolean; correlationId: string | undefined }>((resolve, reject) => {
    const events: SseEvent[] = [];
    const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${token}` };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    const req = http.get(url, { headers }, (res) => {
      options.onOpen?.(req);
      let buffer = '';
      let done = false;
      const finish = (ended: boolean): void => {
        if (done) return;
        done = true;
        resolve({ events, status: res.statusCode ?? 0, ended, correlationId: res.headers['x-correlation-id'] as string | undefined });
      };
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffer += text;
        let at: number;
        while ((at = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const event = parseSseBlock(block);
          if (event === undefined) continue;
          events.push(event);
          if (options.enough(events)) {
            finish(false);
            req.destroy();
            return;
          }
        }
      });
      // `ended` only for a response the server completed; a dropped connection closes without 'end'.
      res.on('end', () => finish(true));
      res.on('close', () => finish(false));
    });
    req.on('error', (error) => reject(error));
  });
  return within(reading, `the event stream ${url} to give enough events or end`);
}

describe('Host with api.enabled', () => {
  let t: TestHost;
  let base: string;
  before(async () => {
    t = await startTestHost(hostYaml('api-listen', 0));
    await useTokenOf(t);
    base = t.host.apiUrl ?? assert.fail('no api url');
  });
  after(() => t.stop());

  it('listens on the configured address and serves the API', async () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${base}/healthz`, { headers: { 'x-correlation-id': 'corr-live' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-correlation-id'), 'corr-live');
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    const checks = ((await ready.json()) as { checks: Array<{ check: string; state: string }> }).checks;
    assert.deepEqual(checks.map((c) => `${c.check}:${c.state}`), ['bus:connected', 'instance:running'], 'the host gives the API its bus');
  });

  it('leaves the API off unless the config enables it', () => {
    const { config } = parseConfig('host: { id: x }\n', '/tmp/wm.yaml', { env: {} });
    assert.deepEqual(config.api, { enabled: false, host: '127.0.0.1', port: 8080, bodyLimitBytes: 1_048_576 });
  });

  it('follows logs as Server-Sent Events and resumes after a reconnect with Last-Event-ID, losing and repeating nothing', async () => {
    const created = await authFetch(`${base}/v1/workers${waitRunning}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: 'sse-1', spec: { command: ['sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; exec sleep 600'] } }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    try {
      const url = `${base}/v1/workers/sse-1/logs?follow=true`;
      const first = await readSse(url, { enough: (e) => e.length >= 8 });
      assert.equal(first.status, 200);
      assert.equal(first.ended, false);
      const last = first.events.at(-1)?.id ?? assert.fail('no event id');
      // The worker keeps writing while the client is away; those lines must arrive after the reconnect. Wait until it
      // has written some, so the resumed stream has to replay them.
      await waitFor(async () => {
        const missed = await authFetch(`${base}/v1/workers/sse-1/logs?sinceSeq=${Number(last) + 1}`);
        return ((await missed.json()) as unknown[]).length >= 5;
      }, 'the worker to write lines while the client is away');
      const second = await readSse(url, { lastEventId: last, enough: (e) => e.length >= 20 });
      assert.equal(second.status, 200);
      const all = [...first.events, ...second.events];
      assert.ok(all.every((e) => e.event === 'log'));
      const chunks = all.map((e) => ({ id: Number(e.id), ...(JSON.parse(e.data) as { seq: number; data: string }) }));
      assert.deepEqual(chunks.map((c) => c.id), chunks.map((c) => c.seq), 'the event id is the chunk seq');
      assert.deepEqual(chunks.map((c) => c.data), chunks.map((_, i) => `line-${i}\n`), 'lines in order, none lost or repeated across the reconnect');
      assert.deepEqual(chunks.map((c) => c.seq), chunks.map((_, i) => i));

      const fromQuery = await readSse(`${url}&sinceSeq=100`, { enough: (e) => e.length >= 1 });
      assert.equal(JSON.parse(fromQuery.events[0]?.data ?? '{}').data, 'line-100\n');
    } finally {
      await authFetch(`${base}/v1/workers/sse-1`, { method: 'DELETE' });
    }
  });

  it('ends a follow stream with an end event when the worker\'s output ends, and answers errors before streaming as JSON', async () => {
    const created = await authFetch(`${base}/v1/workers${waitRunning}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workerId: 'sse-2', spec: { command: ['sh', '-c', 'echo one; echo two'] } }),
    });
    // Answered once it runs or (two echoes are quick) has already ended.
    assert.equal(created.status, 201, await created.clone().text());
    try {
      const read = await readSse(`${base}/v1/workers/sse-2/logs?follow=true`, { enough: () => false });
      assert.equal(read.ended, true);
      assert.deepEqual(read.events.map((e) => e.event), ['log', 'log', 'end']);
      assert.deepEqual(read.events.slice(0, 2).map((e) => (JSON.parse(e.data) as { data: string }).data), ['one\n', 'two\n']);
    } finally {
      await authFetch(`${base}/v1/workers/sse-2`, { method: 'DELETE' });
    }
    const missing = await authFetch(`${base}/v1/workers/w-nope/logs?follow=true`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, 'WM_ERR_NOT_FOUND');
  });

  it('refuses to start when the port is taken, with HOST_ERR_API_LISTEN_FAILED', async () => {
    const port = Number(new URL(base).port);
    await assert.rejects(startTestHost(hostYaml('api-clash', port)), (err: unknown) => {
      assert.ok(err instanceof WorkerManagerError);
      assert.equal(err.code, 'HOST_ERR_API_LISTEN_FAILED');
      assert.equal(err.details?.['port'], port);
      return true;
    });
  });
});

describe('Host stop with an open log stream', () => {
  it('ends the stream and closes the API before the plugins stop', async () => {
    const t = await startTestHost(hostYaml('api-stop', 0));
    await useTokenOf(t);
    const base = t.host.apiUrl ?? assert.fail('no api url');
    let pid: number | undefined;
    try {
      const created = await authFetch(`${base}/v1/workers${waitRunning}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ workerId: 'sse-stop', spec: { command: ['sh', '-c', 'echo hi; exec sleep 600'] } }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      assert.equal(((await created.json()) as { phase: string }).phase, 'Running');
      // The create answers the ledger's view, without the provider's reference: the process provider's own listing has it.
      pid = Number((await t.host.registry.provider('a').listWorkers({})).find((w) => w.workerId === 'sse-stop')?.providerRef);
      let settled = false;
      let received = 0;
      const reading = readSse(`${base}/v1/workers/sse-stop/logs?follow=true`, {
        enough: (events) => {
          received = events.length;
          return false;
        },
      });
      void reading.then(() => (settled = true));
      // Barrier: the worker's line came through the open stream, so it was streaming (not ended) while the worker ran.
      await waitFor(() => received >= 1, 'the worker\'s line on the open stream');
      assert.equal(settled, false, 'the stream is open while the worker runs');
      await within(t.stop(), 'the host to stop', 60_000);
      const read = await reading;
      // Had stop waited for the stream instead of ending it, the API's close timeout would have dropped the connection
      // (ended false), however long that took.
      assert.equal(read.ended, true, 'the server ended the response rather than dropping the connection');
      assert.deepEqual(read.events.map((e) => e.event), ['log']);
      await assert.rejects(fetch(`${base}/healthz`));
    } finally {
      await t.stop();
      // The host is gone but its worker (a detached process group) outlives it by design: remove it here.
      if (pid !== undefined && pid > 0) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  });
});
