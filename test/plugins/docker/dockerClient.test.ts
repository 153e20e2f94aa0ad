import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { resolveConfig } from '../../../plugins/docker/src/config.ts';
import { dockerClient } from '../../../plugins/docker/src/dockerClient.ts';

const modemOf = (config: object, env: NodeJS.ProcessEnv = {}) => dockerClient(resolveConfig(config), env).modem as unknown as Record<string, unknown>;

describe('docker provider: engine address', () => {
  it('uses socketPath, else DOCKER_HOST, else /var/run/docker.sock', () => {
    assert.equal(modemOf({}).socketPath, '/var/run/docker.sock');
    assert.equal(modemOf({}, { DOCKER_HOST: 'unix:///run/user/docker.sock' }).socketPath, '/run/user/docker.sock');
    assert.equal(modemOf({ socketPath: '/x.sock' }, { DOCKER_HOST: 'unix:///ignored.sock' }).socketPath, '/x.sock');
  });

  it('speaks http to tcp:// hosts and https with TLS options', () => {
    const plain = modemOf({}, { DOCKER_HOST: 'tcp://10.1.2.3:2375' });
    assert.deepEqual([plain.host, plain.port, plain.protocol], ['10.1.2.3', 2375, 'http']);
    const tls = modemOf({ host: 'https://engine.example:2376' });
    assert.deepEqual([tls.host, tls.port, tls.protocol], ['engine.example', 2376, 'https']);
  });

  it('a TLS file that cannot be read is WM_ERR_CONFIGURATION naming the file', () => {
    assert.throws(() => modemOf({ host: 'https://engine.example:2376', tls: { caFile: '/no/such/ca.pem' } }), (e: unknown) => {
      assert.ok(isWorkerManagerError(e) && e.code === 'WM_ERR_CONFIGURATION');
      assert.equal(e.details?.['file'], '/no/such/ca.pem');
      return true;
    });
  });
});
