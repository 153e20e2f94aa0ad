import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { docker, eventBarrier, IMAGE, inspect, openHarness, ownedCounts, waitFor } from './helpers.ts';

const skip = await requireDocker();

/** A worker that serves `body` over HTTP on port 8080 (busybox httpd). */
const httpSpec = (body: string) => ({
  image: IMAGE,
  command: ['sh', '-c', `mkdir -p /tmp/www && echo ${body} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`],
});

async function httpGet(address: string, timeoutMs = 2_000): Promise<string> {
  const res = await fetch(`http://${address}/index.html`, { signal: AbortSignal.timeout(timeoutMs) });
  return (await res.text()).trim();
}

async function refused(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host, () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('docker provider: networking and health checks', { skip, concurrency: true }, () => {
  it('isolation: Default joins the instance bridge, Strict gets its own internal network (removed on terminate), Complete has none', async (t) => {
    const h = await openHarness(t);
    const base = `wm-${h.hostId}-test`;
    const [d, s, c] = await Promise.all([
      h.proxy.createWorker({ workerId: 'dflt', spec: httpSpec('default') }),
      h.proxy.createWorker({ workerId: 'strict', spec: { ...httpSpec('strict'), network: { type: 'Isolated', isolation: 'Strict' } } }),
      h.proxy.createWorker({ workerId: 'none', spec: { ...httpSpec('none'), network: { type: 'Isolated', isolation: 'Complete' } } }),
    ]);
    assert.equal((await inspect(d.providerRef)).HostConfig.NetworkMode, base);
    const strictNet = await docker.getNetwork(`${base}-strict`).inspect();
    assert.equal(strictNet.Internal, true, 'a Strict worker network has no egress');
    assert.equal(strictNet.Labels?.['worker-manager/worker-id'], 'strict');
    assert.equal((await inspect(c.providerRef)).HostConfig.NetworkMode, 'none');
    const ifaces = await h.proxy.executeCommand({ workerId: 'none', command: ['sh', '-c', 'ls /sys/class/net'] });
    assert.equal(ifaces.stdout.trim(), 'lo', 'Complete isolation leaves only loopback');
    // The default worker reaches the strict one only if they share a network: they do not.
    const strictIp = Object.values((await inspect(s.providerRef)).NetworkSettings.Networks)[0]?.IPAddress ?? '';
    const cross = await h.proxy.executeCommand({ workerId: 'dflt', command: ['wget', '-q', '-T', '1', '-O', '-', `http://${strictIp}:8080/`], timeoutMs: 3_000 });
    assert.notEqual(cross.exitCode, 0, 'a Default worker cannot reach a Strict one');
    await h.proxy.terminateWorker({ workerId: 'strict', gracePeriodMs: 0 });
    await assert.rejects(docker.getNetwork(`${base}-strict`).inspect(), /no such network|not found/i);
    await Promise.all([h.proxy.terminateWorker({ workerId: 'dflt', gracePeriodMs: 0 }), h.proxy.terminateWorker({ workerId: 'none', gracePeriodMs: 0 })]);
    assert.deepEqual(await ownedCounts(h.hostId), { containers: 0, networks: 1, volumes: 0 });
  });

  it('publishes ports on the configured address (127.0.0.1 by default) and reports them as endpoints', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({ workerId: 'web', spec: { ...httpSpec('published'), ports: [{ containerPort: 8080, name: 'http' }] } });
    const endpoint = w.endpoints?.find((e) => e.name === 'http');
    assert.ok(endpoint !== undefined, `endpoints: ${JSON.stringify(w.endpoints)}`);
    assert.match(endpoint.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(await waitFor(() => httpGet(endpoint.address).catch(() => undefined), 'the published port to answer'), 'published');
    const listed = await h.proxy.listWorkers({});
    assert.deepEqual(listed.find((x) => x.workerId === 'web')?.endpoints, w.endpoints, 'listWorkers reports the same endpoints');
  });

  it('portForward opens a local endpoint to the worker port (also with Strict isolation) and closes it on terminate', async (t) => {
    const h = await openHarness(t);
    await h.proxy.createWorker({ workerId: 'fwd', spec: { ...httpSpec('forwarded'), network: { type: 'Private', isolation: 'Strict' } } });
    const { endpoint } = await h.proxy.portForward({ workerId: 'fwd', remotePort: 8080 });
    assert.match(endpoint, /^127\.0\.0\.1:\d+$/);
    assert.equal(await waitFor(() => httpGet(endpoint).catch(() => undefined), 'the forward to answer'), 'forwarded');
    assert.deepEqual(await h.proxy.portForward({ workerId: 'fwd', remotePort: 8080 }), { endpoint }, 'idempotent');
    await h.proxy.terminateWorker({ workerId: 'fwd', gracePeriodMs: 0 });
    assert.equal(await refused(endpoint), true, 'the endpoint is closed once the worker is terminated');
    await h.proxy.createWorker({ workerId: 'nonet', spec: { ...httpSpec('x'), network: { type: 'Isolated', isolation: 'Complete' } } });
    await assert.rejects(h.proxy.portForward({ workerId: 'nonet', remotePort: 8080 }), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_CONFLICT');
  });

  it('a health check maps to Docker HEALTHCHECK; the worker is Starting{HealthCheck} until healthy; transitions become WorkerStateChanged events', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({
      workerId: 'healthy',
      // A check of a healthy server must not time out on a loaded machine (10 s); a broken one fails at once (404).
      spec: { ...httpSpec('ok'), healthCheck: { type: 'http', port: 8080, path: '/index.html', intervalMs: 200, timeoutMs: 10_000, retries: 2, startPeriodMs: 0 } },
    });
    assert.ok(w.state.phase === 'Running' || (w.state.phase === 'Starting' && w.state.pendingReason === 'HealthCheck'), `createWorker returns without waiting for healthy (${JSON.stringify(w.state)})`);
    const hc = (await inspect(w.providerRef)).Config.Healthcheck;
    assert.deepEqual(hc?.Test, ['CMD-SHELL', 'wget -q -O /dev/null http://127.0.0.1:8080/index.html || exit 1']);
    assert.equal(hc?.Interval, 200_000_000);
    assert.equal(hc?.Timeout, 10_000_000_000);
    assert.equal(hc?.Retries, 2);
    const up = await waitFor(() => h.events.find((e) => e.workerId === 'healthy' && e.type === 'WorkerStateChanged' && e.newState.phase === 'Running'), 'Starting{HealthCheck} -> Running event');
    assert.deepEqual(up.type === 'WorkerStateChanged' && up.oldState, { phase: 'Starting', pendingReason: 'HealthCheck' });
    assert.deepEqual(await h.proxy.getWorkerStatus({ workerId: 'healthy' }), { phase: 'Running' });
    // Break it: the check starts failing and the worker becomes Failed{Unhealthy} and is stopped.
    await h.proxy.executeCommand({ workerId: 'healthy', command: ['rm', '/tmp/www/index.html'] });
    await waitFor(() => h.events.find((e) => e.workerId === 'healthy' && e.type === 'WorkerFailed' && e.reason === 'Unhealthy'), 'WorkerFailed Unhealthy');
    const changed = h.events.find((e) => e.workerId === 'healthy' && e.type === 'WorkerStateChanged' && e.newState.phase === 'Failed');
    assert.deepEqual(changed?.type === 'WorkerStateChanged' && [changed.oldState, changed.newState], [{ phase: 'Running' }, { phase: 'Failed', reason: 'Unhealthy' }]);
    const final = await waitFor(async () => {
      const s = await h.proxy.getWorkerStatus({ workerId: 'healthy' });
      return s.phase === 'Failed' && s.exitCode !== undefined ? s : undefined;
    }, 'the unhealthy worker to be stopped');
    assert.equal(final.phase === 'Failed' && final.reason, 'Unhealthy');
    await eventBarrier(h, 'healthy-barrier');
    assert.equal(h.events.filter((e) => e.workerId === 'healthy' && e.type === 'WorkerFailed').length, 1, 'one WorkerFailed');
  });

  it('a health check that never passes: the worker becomes Failed{Unhealthy} (tcp and command checks map too)', async (t) => {
    const h = await openHarness(t);
    const w = await h.proxy.createWorker({
      workerId: 'sick',
      spec: { image: IMAGE, command: ['sleep', '600'], healthCheck: { type: 'tcp', port: 9, intervalMs: 200, timeoutMs: 1_000, retries: 1 } },
    });
    const sick = await waitFor(async () => {
      const s = await h.proxy.getWorkerStatus({ workerId: 'sick' });
      return s.phase === 'Failed' ? s : undefined;
    }, 'the sick worker to fail its health check');
    assert.equal(sick.phase === 'Failed' && sick.reason, 'Unhealthy');
    assert.deepEqual((await inspect(w.providerRef)).Config.Healthcheck?.Test, ['CMD-SHELL', 'nc -w 1 127.0.0.1 9 </dev/null >/dev/null 2>&1 || exit 1']);
    const c = await h.proxy.createWorker({
      workerId: 'cmd',
      // `true` passes at once; the deadline is only there so a loaded engine cannot time it out.
      spec: { image: IMAGE, command: ['sleep', '600'], healthCheck: { type: 'command', command: ['true'], intervalMs: 200, timeoutMs: 30_000, retries: 1 } },
    });
    await waitFor(async () => (await h.proxy.getWorkerStatus({ workerId: 'cmd' })).phase === 'Running', 'the command-checked worker to be healthy');
    assert.deepEqual((await inspect(c.providerRef)).Config.Healthcheck?.Test, ['CMD', 'true']);
  });
});
