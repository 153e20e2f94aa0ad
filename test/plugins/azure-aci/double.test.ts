import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { ContainerGroup, ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import { ClientSecretCredential } from '@azure/identity';
import type { AzureAciDouble } from '../../doubles/azureAci.ts';
import { requireDocker } from '../../helpers/requireDocker.ts';
import { waitFor } from '../../helpers/waitFor.ts';
import { CLIENT_ID, IMAGE, LOCATION, newClientSecret, RESOURCE_GROUP, sdkClient, startDouble, SUBSCRIPTION, TENANT } from './helpers.ts';

const skip = await requireDocker();

const group = (command: string[], extra: Partial<ContainerGroup> = {}): ContainerGroup => ({
  location: LOCATION,
  osType: 'Linux',
  restartPolicy: 'Never',
  containers: [{ name: 'main', image: IMAGE, command, resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } }],
  ...extra,
});

/** A raw HTTPS request to the double, for what the SDK never sends (no token, no api-version). */
function raw(double: AzureAciDouble, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const req = request(`${double.url}${path}`, { ca: double.ca, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error?: { code: string; message: string } } }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Azure ACI double through the real @azure/arm-containerinstance client and @azure/identity', { skip, timeout: 300_000 }, () => {
  const secret = newClientSecret();
  let double: AzureAciDouble;
  let client: ContainerInstanceManagementClient;
  const groupsPath = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.ContainerInstance/containerGroups`;

  before(async () => {
    double = await startDouble(secret);
    client = sdkClient(double, secret);
  });
  after(async () => {
    await double?.close();
  });

  it('refuses requests without a bearer token or api-version, with ARM error bodies', async () => {
    const noToken = await raw(double, `${groupsPath}?api-version=2023-05-01`);
    assert.equal(noToken.status, 401);
    assert.equal(noToken.body.error?.code, 'AuthenticationFailed');
    const forged = await raw(double, `${groupsPath}?api-version=2023-05-01`, { authorization: 'Bearer forged' });
    assert.equal(forged.status, 401);
    assert.equal(forged.body.error?.code, 'InvalidAuthenticationToken');
  });

  it('issues tokens only for the registered client secret (ClientSecretCredential against the token endpoint)', async () => {
    const before = double.tokens.issued;
    const wrong = sdkClient(double, 'not-the-secret', { maxRetries: 0 });
    await assert.rejects(wrong.containerGroups.get(RESOURCE_GROUP, 'any'), (e: Error) => /^Authentication(Required)?Error$/.test(e.name) && /7000215|invalid_client/.test(e.message) && !e.message.includes(secret));
    assert.equal(double.tokens.issued, before, 'no token for a wrong secret');
    await assert.rejects(client.containerGroups.get(RESOURCE_GROUP, 'absent'), (e: { statusCode?: number; code?: string }) => e.statusCode === 404 && e.code === 'ResourceNotFound');
    assert.ok(double.tokens.issued > before, 'the right secret got a token, which ARM accepted (404, not 401)');
  });

  it('refuses an expired token with ExpiredAuthenticationToken; the SDK client gets a fresh one', async () => {
    double.tokens.ttlSeconds = 1;
    try {
      const fresh = sdkClient(double, secret);
      const list = async (): Promise<void> => {
        for await (const _g of fresh.containerGroups.listByResourceGroup(RESOURCE_GROUP)) void _g;
      };
      await list();
      // A token issued after the client's: once it has expired, so has the client's.
      const credential = new ClientSecretCredential(TENANT, CLIENT_ID, secret, { authorityHost: double.url, disableInstanceDiscovery: true, agent: new Agent({ ca: double.ca }) });
      const later = await credential.getToken(`${double.url}/.default`);
      assert.ok(later !== null);
      const expired = await waitFor(async () => {
        const r = await raw(double, `${groupsPath}?api-version=2023-05-01`, { authorization: `Bearer ${later.token}` });
        return r.status === 401 ? r : undefined;
      }, 'the token to expire');
      assert.equal(expired.body.error?.code, 'ExpiredAuthenticationToken');
      const issued = double.tokens.issued;
      await list();
      assert.ok(double.tokens.issued > issued, 'the client asked for a new token');
      assert.equal(double.calls.at(-1)?.status, 200);
    } finally {
      double.tokens.ttlSeconds = 3_600;
    }
  });

  it('creates a container group as a long-running operation, runs it in Docker, and reports its instance view and logs', async () => {
    const poller = await client.containerGroups.beginCreateOrUpdate(
      RESOURCE_GROUP,
      'wire-run',
      group(['sh', '-c', 'echo one; echo two >&2; exec sleep 600'], { tags: { owner: 'wire' }, containers: [{ name: 'main', image: IMAGE, command: ['sh', '-c', 'echo one; echo two >&2; exec sleep 600'], environmentVariables: [{ name: 'PLAIN', value: 'p' }, { name: 'HIDDEN', secureValue: 's3cr3t-value' }], resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } }] }),
    );
    const put = double.calls.find((c) => c.method === 'PUT' && c.path.endsWith('/wire-run'));
    assert.equal(put?.status, 201, 'a new group is 201 Created');
    const done = await poller.pollUntilDone();
    assert.equal(done.provisioningState, 'Succeeded');
    assert.ok(double.calls.some((c) => c.method === 'GET' && /\/locations\/westeurope\/operations\//.test(c.path)), 'the SDK polled the Azure-AsyncOperation resource');
    const running = await waitFor(async () => {
      const g = await client.containerGroups.get(RESOURCE_GROUP, 'wire-run');
      return g.containers[0]?.instanceView?.currentState?.state === 'Running' ? g : undefined;
    }, 'the container to run');
    assert.equal(running.instanceView?.state, 'Running');
    assert.deepEqual(running.containers[0]?.environmentVariables, [{ name: 'PLAIN', value: 'p' }, { name: 'HIDDEN' }], 'secure values are never returned');
    assert.ok(running.containers[0]?.instanceView?.events?.some((e) => e.name === 'Pulled'));
    const logs = await waitFor(async () => {
      const l = await client.containers.listLogs(RESOURCE_GROUP, 'wire-run', 'main');
      return l.content?.includes('two') === true ? l.content : undefined;
    }, 'both streams in the log');
    // stdout and stderr are separate pipes: their relative order is not defined, only that both are there.
    assert.deepEqual(logs.split('\n').sort(), ['', 'one', 'two']);
    const tail = (await client.containers.listLogs(RESOURCE_GROUP, 'wire-run', 'main', { tail: 1 })).content;
    assert.equal(tail, `${logs.split('\n')[1]!}\n`, 'tail 1 is the last line');
    const stamped = ((await client.containers.listLogs(RESOURCE_GROUP, 'wire-run', 'main', { timestamps: true })).content ?? '').split('\n').filter((l) => l !== '');
    assert.equal(stamped.length, 2);
    for (const line of stamped) assert.match(line, /^\d{4}-\d\d-\d\dT\S+Z (one|two)$/, 'timestamps: true starts each line with an RFC 3339 time');
    const listed: ContainerGroup[] = [];
    for await (const g of client.containerGroups.listByResourceGroup(RESOURCE_GROUP)) listed.push(g);
    assert.deepEqual(listed.find((g) => g.name === 'wire-run')?.tags, { owner: 'wire' });

    await client.containerGroups.stop(RESOURCE_GROUP, 'wire-run');
    const stopped = await client.containerGroups.get(RESOURCE_GROUP, 'wire-run');
    assert.equal(stopped.instanceView?.state, 'Stopped');
    await client.containerGroups.beginDeleteAndWait(RESOURCE_GROUP, 'wire-run');
    await assert.rejects(client.containerGroups.get(RESOURCE_GROUP, 'wire-run'), (e: { statusCode?: number }) => e.statusCode === 404);
    assert.equal(double.dockerIdOf(RESOURCE_GROUP, 'wire-run'), undefined);
  });

  it('reports a real exit code as a Terminated container in a Failed group, and restart runs it again', async () => {
    await client.containerGroups.beginCreateOrUpdateAndWait(RESOURCE_GROUP, 'wire-exit', group(['sh', '-c', 'echo bye; exit 3']));
    const ended = await waitFor(async () => {
      const g = await client.containerGroups.get(RESOURCE_GROUP, 'wire-exit');
      return g.containers[0]?.instanceView?.currentState?.state === 'Terminated' ? g : undefined;
    }, 'the container to exit');
    assert.equal(ended.containers[0]?.instanceView?.currentState?.exitCode, 3);
    assert.equal(ended.containers[0]?.instanceView?.currentState?.detailStatus, 'Error');
    assert.equal(ended.instanceView?.state, 'Failed');
    await client.containerGroups.beginRestartAndWait(RESOURCE_GROUP, 'wire-exit', { updateIntervalInMs: 200 });
    await waitFor(async () => ((await client.containers.listLogs(RESOURCE_GROUP, 'wire-exit', 'main')).content ?? '').split('bye').length === 3, 'the second run in the log');
    await client.containerGroups.beginDeleteAndWait(RESOURCE_GROUP, 'wire-exit');
  });

  it('ends the asynchronous operation Failed when provisioning fails (missing image, injected failure)', async () => {
    // The SDK polls once inside begin*, so an operation that fails at once rejects there, else in pollUntilDone.
    const absent = { ...group(['true']), containers: [{ name: 'main', image: 'local/absent:1', resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } } }] };
    await assert.rejects(async () => (await client.containerGroups.beginCreateOrUpdate(RESOURCE_GROUP, 'wire-pull', absent)).pollUntilDone(), /long-running operation has failed\. InaccessibleImage/);
    const failed = await client.containerGroups.get(RESOURCE_GROUP, 'wire-pull');
    assert.equal(failed.provisioningState, 'Failed');
    assert.equal(failed.containers[0]?.instanceView?.currentState?.detailStatus, 'ErrImagePull');

    double.failNextProvisioning({ code: 'ServiceUnavailable', message: 'The requested resource is not available in the location at this moment.' });
    await assert.rejects(async () => (await client.containerGroups.beginCreateOrUpdate(RESOURCE_GROUP, 'wire-fail', group(['true']))).pollUntilDone(), /long-running operation has failed\. ServiceUnavailable/);
    assert.equal((await client.containerGroups.get(RESOURCE_GROUP, 'wire-fail')).provisioningState, 'Failed');
    await client.containerGroups.beginDeleteAndWait(RESOURCE_GROUP, 'wire-pull');
    await client.containerGroups.beginDeleteAndWait(RESOURCE_GROUP, 'wire-fail');
  });

  it('throttles with 429 and Retry-After, which the SDK retries; past its retries the 429 surfaces', async () => {
    double.throttle(2, 1);
    const start = double.calls.length;
    await assert.rejects(client.containerGroups.get(RESOURCE_GROUP, 'absent'), (e: { statusCode?: number }) => e.statusCode === 404);
    assert.deepEqual(double.calls.slice(start).map((c) => c.status), [429, 429, 404], 'two throttled attempts, then the answer');
    const impatient = sdkClient(double, secret, { maxRetries: 1 });
    double.throttle(5, 1);
    await assert.rejects(impatient.containerGroups.get(RESOURCE_GROUP, 'absent'), (e: { statusCode?: number; code?: string }) => e.statusCode === 429 && e.code === 'SubscriptionRequestsThrottled');
    double.throttle(0);
  });

  it('validates names and tags as ARM does', async () => {
    await assert.rejects(client.containerGroups.beginCreateOrUpdate(RESOURCE_GROUP, 'Bad_Name', group(['true'])), (e: { statusCode?: number; code?: string }) => e.statusCode === 400 && e.code === 'InvalidContainerGroupName');
    await assert.rejects(
      client.containerGroups.beginCreateOrUpdate(RESOURCE_GROUP, 'wire-tags', group(['true'], { tags: { 'a/b': 'x' } })),
      (e: { statusCode?: number; code?: string }) => e.statusCode === 400 && e.code === 'InvalidTagNameCharacters',
    );
  });
});
