import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Compile } from 'typebox/compile';
import { PluginDetail, PluginList } from '../../../host/src/api/apiSchemas.ts';
import { createApiServer } from '../../../host/src/api/createApiServer.ts';
import { fixturePlugin, repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { waitFor } from '../../helpers/waitFor.ts';

const PATH = process.env['PATH'] ?? '/usr/bin:/bin';
const checkList = Compile(PluginList);
const checkDetail = Compile(PluginDetail);

interface Row {
  name: string;
  id: string | null;
  version: string | null;
  kind: string | null;
  isolation: string;
  capabilities: Record<string, string>;
  error: { code: string } | null;
  instances: Array<{ name: string; state: string; default: boolean; restarts: number; crashes: number; error: { code: string } | null }>;
}

describe('GET /v1/plugins and /v1/plugins/{name} on a real host', () => {
  let t: TestHost;
  let app: FastifyInstance;

  before(async () => {
    t = await startTestHost(`
host: { id: api-plugins, stateDir: \${DIR}/state }
plugins:
  - name: process
    package: ${repoRoot}plugins/process
    env: { PATH: "${PATH}" }
  - name: exits
    package: ${fixturePlugin('hostile-exit')}
    limits: { restart: { maxRestarts: 5, windowMs: 60000 } }
  - name: setup-fails
    package: ${fixturePlugin('hostile-setup')}
  - name: unused
    package: ${fixturePlugin('echo')}
  - name: missing
    package: ./nowhere
instances:
  - { name: a, plugin: process, default: true }
  - { name: b, plugin: process }
  - { name: x, plugin: exits }
  - { name: broken, plugin: setup-fails }
`);
    app = createApiServer({ workers: t.host.workers, registry: t.host.registry, logger: t.host.logger });
  });
  after(async () => {
    await app.close();
    await t.stop();
  });

  it('lists every plugin package with id, version, kind, isolation, negotiated capabilities and its instances', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/plugins' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ plugins: Row[] }>();
    assert.ok(checkList.Check(body), JSON.stringify([...checkList.Errors(body)].slice(0, 3)));
    const byName = new Map(body.plugins.map((p) => [p.name, p]));
    assert.deepEqual([...byName.keys()], ['process', 'exits', 'setup-fails', 'unused', 'missing']);

    const processRow = byName.get('process') ?? assert.fail('no process row');
    assert.equal(processRow.id, 'process');
    assert.equal(processRow.version, '0.1.0');
    assert.equal(processRow.kind, 'provider');
    assert.equal(processRow.capabilities['worker.exec'], '1.0.0');
    assert.deepEqual(processRow.instances.map((i) => [i.name, i.state, i.default, i.restarts]), [['a', 'running', true, 0], ['b', 'running', false, 0]]);

    assert.deepEqual(byName.get('unused')?.instances, [], 'a plugin nobody instantiated is listed without instances');
    assert.equal(byName.get('unused')?.id, 'echo');
    assert.equal(byName.get('setup-fails')?.instances[0]?.error?.code, 'HOST_ERR_PLUGIN_SETUP_FAILED');
    const missing = byName.get('missing') ?? assert.fail('no missing row');
    assert.equal(missing.error?.code, 'HOST_ERR_PLUGIN_NOT_FOUND');
    assert.equal(missing.id, null);
    assert.equal(missing.version, null);
  });

  it('counts the restarts of an instance whose thread died', async () => {
    // The fixture exits its thread on this call; the sandbox restarts it.
    await assert.rejects(t.host.registry.provider('x').getWorkerStatus({ workerId: 'exit' }));
    const row = await waitFor(async () => {
      const plugins = (await app.inject({ method: 'GET', url: '/v1/plugins' })).json<{ plugins: Row[] }>().plugins;
      const inst = plugins.find((p) => p.name === 'exits')?.instances[0];
      return inst !== undefined && inst.restarts >= 1 && inst.state === 'running' ? inst : undefined;
    }, 'the restart to show', 60_000);
    assert.equal(row.restarts, 1);
    assert.equal(row.crashes, 1);
  });

  it('inspects one plugin: description, contract, methods, declared capabilities, boot policy', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/plugins/process' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<Row & { contract: string; methods: string[]; declaredCapabilities: Record<string, string>; onBootFailure: string; description: string | null }>();
    assert.ok(checkDetail.Check(body), JSON.stringify([...checkDetail.Errors(body)].slice(0, 3)));
    assert.equal(body.contract, 'worker-provider');
    assert.ok(body.methods.includes('createWorker') && body.methods.includes('executeCommand'), body.methods.join(','));
    assert.ok(!body.methods.includes('portForward'), 'the process provider does not forward ports');
    assert.equal(body.declaredCapabilities['worker.lifecycle'], '2.0.0');
    assert.equal(body.onBootFailure, 'continue');
    assert.equal(typeof body.description, 'string');

    const echo = (await app.inject({ method: 'GET', url: '/v1/plugins/unused' })).json<{ description: string | null; instances: unknown[] }>();
    assert.equal(echo.description, 'In-memory provider for tests and benchmarks.');
  });

  it('answers an unknown plugin with 404 and a malformed name with 400', async () => {
    const none = await app.inject({ method: 'GET', url: '/v1/plugins/nope' });
    assert.equal(none.statusCode, 404);
    assert.deepEqual(none.json<{ code: string; details: unknown }>().details, { plugin: 'nope' });
    assert.equal(none.json<{ code: string }>().code, 'WM_ERR_NOT_FOUND');
    const bad = await app.inject({ method: 'GET', url: '/v1/plugins/Bad_Name' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json<{ details: { path: string } }>().details.path, '/params/name');
  });
});
