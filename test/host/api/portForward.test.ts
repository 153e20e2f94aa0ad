import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { repoRoot, startTestHost } from '../../helpers/startTestHost.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import { IMAGE, newHostId, removeOwned, secretsRoot } from '../../plugins/docker/helpers.ts';

const skip = await requireDocker();

describe('POST /v1/workers/{id}/port-forward through the docker provider', { skip }, () => {
  it('opens a local endpoint that reaches the worker\'s port, the same one when repeated', async (t) => {
    const hostId = newHostId('apifwd');
    t.after(() => removeOwned(hostId));
    const host = await startTestHost(`
host: { id: ${hostId}, stateDir: \${DIR}/state }
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
instances:
  - { name: local, plugin: docker, default: true, config: { secretsDir: ${secretsRoot}, defaultGracePeriodMs: 1000 } }
`);
    t.after(() => host.stop());
    const app = createApiServer({ workers: host.host.workers, registry: host.host.registry, logger: host.host.logger });
    t.after(() => app.close());

    const created = await app.inject({
      method: 'POST', url: `/v1/workers?wait=running&waitTimeoutMs=${Math.min(budget(120_000), 600_000)}`,
      payload: { workerId: 'web', spec: { image: IMAGE, command: ['sh', '-c', 'mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'] } },
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json<{ phase: string }>().phase, 'Running', created.body);
    const res = await app.inject({ method: 'POST', url: '/v1/workers/web/port-forward', payload: { remotePort: 8080 }, headers: { 'x-correlation-id': 'corr-fwd' } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ workerId: string; instance: string; endpoint: string }>();
    assert.equal(body.workerId, 'web');
    assert.equal(body.instance, 'local');
    assert.match(body.endpoint, /^127\.0\.0\.1:\d+$/);
    const text = await waitFor(async () => {
      try {
        // Bounds one attempt (a forward that is not up yet can leave a request hanging); the wait retries.
        const page = await fetch(`http://${body.endpoint}/index.html`, { signal: AbortSignal.timeout(budget(5_000)) });
        return (await page.text()).trim();
      } catch {
        return undefined;
      }
    }, 'the forward to answer', 60_000);
    assert.equal(text, 'forwarded');
    const again = await app.inject({ method: 'POST', url: '/v1/workers/web/port-forward', payload: { remotePort: 8080 } });
    assert.equal(again.json<{ endpoint: string }>().endpoint, body.endpoint, 'repeating returns the open forward');
    const gone = await app.inject({ method: 'DELETE', url: '/v1/workers/web?gracePeriodMs=0' });
    assert.equal(gone.statusCode, 200, gone.body);
  });
});
