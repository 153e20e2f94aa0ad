import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import plugin from '@worker-manager/plugin-azure-aci';
import { isWorkerManagerError, type OwnerLabels } from '@worker-manager/plugin-sdk';
import { checkPluginMetadata } from '@worker-manager/plugin-sdk/testing';
import { validateConfigFile } from '../../../host/src/config/validateConfigFile.ts';
import { toWorkerError } from '../../../plugins/azure-aci/src/armErrors.ts';
import { resolveConfig } from '../../../plugins/azure-aci/src/config.ts';
import { planGroup } from '../../../plugins/azure-aci/src/groupPlan.ts';
import { stateOfGroup } from '../../../plugins/azure-aci/src/groupState.ts';
import { groupName, isOwned, labelsOf, MAX_SPEC_LABELS, specHashOf, workerTags } from '../../../plugins/azure-aci/src/tags.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const owner: OwnerLabels = { 'worker-manager/host': 'h1', 'worker-manager/instance': 'aci' };
const raw = {
  subscriptionId: '00000000-0000-0000-0000-000000000000',
  resourceGroup: 'rg',
  location: 'westeurope',
  tenantId: 't',
  clientId: '00000000-0000-0000-0000-000000000000',
  clientSecret: { env: 'AZURE_CLIENT_SECRET' },
  retry: {},
};
const config = resolveConfig(raw);

type View = NonNullable<ContainerGroup['containers'][number]['instanceView']>;
const group = (provisioningState: string, view: View | undefined, groupState?: string): ContainerGroup => ({
  provisioningState,
  osType: 'Linux',
  containers: [{ name: 'worker', image: 'x', resources: { requests: { cpu: 1, memoryInGB: 1 } }, ...(view === undefined ? {} : { instanceView: view }) }],
  ...(groupState === undefined ? {} : { instanceView: { state: groupState } }),
});

describe('azure-aci plugin package', () => {
  it('package.json workerManager block and version match the definition (npm run plugin:metadata -- plugins/azure-aci)', async () => {
    await checkPluginMetadata(path.join(root, 'plugins/azure-aci/'), plugin);
  });

  it('config/examples/azure-aci.yaml validates against the plugin schema', async () => {
    const result = await validateConfigFile(path.join(root, 'config/examples/azure-aci.yaml'), {});
    assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.issues));
  });

  it('resolveConfig fills defaults, and the credential scope follows the endpoint', () => {
    assert.equal(config.endpoint, 'https://management.azure.com');
    assert.equal(config.credentialScope, 'https://management.azure.com/.default');
    assert.deepEqual(config.retry, { maxRetries: 4, retryDelayMs: 800, maxRetryDelayMs: 30_000 });
    const gov = resolveConfig({ ...raw, endpoint: 'https://management.usgovcloudapi.net/' });
    assert.equal(gov.credentialScope, 'https://management.usgovcloudapi.net/.default');
  });
});

describe('stateOfGroup: ARM provisioning state and container instance view to a worker state', () => {
  const cases: Array<[string, ContainerGroup, unknown]> = [
    ['accepted, pulling', group('Pending', { events: [{ name: 'Pulling', message: 'pulling image' }] }), { phase: 'Starting', pendingReason: 'ImagePull' }],
    ['accepted, nothing known yet', group('Creating', undefined), { phase: 'Starting', pendingReason: 'Provisioning' }],
    ['pulled, container being created', group('Creating', { currentState: { state: 'Waiting', detailStatus: 'ContainerCreating' } }), { phase: 'Starting', pendingReason: 'ContainerCreating' }],
    ['running', group('Succeeded', { currentState: { state: 'Running' } }, 'Running'), { phase: 'Running' }],
    ['exit 0', group('Succeeded', { currentState: { state: 'Terminated', exitCode: 0 } }, 'Succeeded'), { phase: 'Terminated', exitCode: 0 }],
    ['exit 3', group('Succeeded', { currentState: { state: 'Terminated', exitCode: 3, detailStatus: 'Error' } }, 'Failed'), { phase: 'Failed', reason: 'ExitCode3', exitCode: 3 }],
    ['OOM', group('Succeeded', { currentState: { state: 'Terminated', exitCode: 137, detailStatus: 'OOMKilled' } }), { phase: 'Failed', reason: 'OOMKilled', exitCode: 137 }],
    ['pull failed', group('Failed', { currentState: { state: 'Waiting', detailStatus: 'ErrImagePull' } }), { phase: 'Failed', reason: 'ImagePullFailed' }],
    ['pull failed (event only)', group('Failed', { events: [{ name: 'Failed', type: 'Warning', message: 'Failed to pull image "x"' }] }), { phase: 'Failed', reason: 'ImagePullFailed' }],
    ['operation failed', group('Failed', undefined), { phase: 'Failed', reason: 'ProvisioningFailed' }],
    ['stopped outside', group('Succeeded', { currentState: { state: 'Terminated', exitCode: 137 } }, 'Stopped'), { phase: 'Failed', reason: 'Stopped', exitCode: 137 }],
    ['being deleted', group('Deleting', undefined), { phase: 'Terminating' }],
  ];
  for (const [name, g, expected] of cases) it(name, () => assert.deepEqual(stateOfGroup(g), expected));
});

describe('tags and names', () => {
  it('round-trips label keys ARM refuses as tag names, and marks ownership', () => {
    const tags = workerTags(owner, 'w-1', { image: 'x', labels: { 'conformance/worker': 'w-1', plain: 'v' } }, 'hash', '2026-01-01T00:00:00.000Z');
    assert.ok(Object.keys(tags).every((k) => !/[<>%&\\?/]/.test(k)), 'no tag name has a character ARM refuses');
    assert.deepEqual(labelsOf(tags), { 'conformance/worker': 'w-1', plain: 'v', 'worker-manager/host': 'h1', 'worker-manager/instance': 'aci' });
    assert.equal(isOwned(tags, owner), true);
    assert.equal(isOwned(tags, { ...owner, 'worker-manager/instance': 'other' }), false);
  });

  it('refuses more labels than ARM has tags for', () => {
    const labels = Object.fromEntries(Array.from({ length: MAX_SPEC_LABELS + 1 }, (_, i) => [`l${i}`, 'v']));
    assert.throws(() => workerTags(owner, 'w-1', { image: 'x', labels }, 'h', 't'), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_VALIDATION');
  });

  it('names groups by host, instance and worker id, within ARM rules', () => {
    const name = groupName('wm', owner, 'a--b');
    assert.match(name, /^wm-[0-9a-f]{24}$/);
    assert.equal(groupName('wm', owner, 'a--b'), name);
    assert.notEqual(groupName('wm', { ...owner, 'worker-manager/instance': 'b' }, 'a--b'), name);
  });

  it('hashes secret mounts by name, never by value', () => {
    const spec = { image: 'x' };
    const a = specHashOf(spec, [{ strategy: 'env', name: 's', version: '1', envName: 'S', value: 'one' }]);
    const b = specHashOf(spec, [{ strategy: 'env', name: 's', version: '2', envName: 'S', value: 'two' }]);
    assert.equal(a, b);
    assert.notEqual(a, specHashOf(spec, []));
  });
});

describe('planGroup', () => {
  it('makes one Linux container with restartPolicy Never, env secrets as secureValues, resources in ACI units', () => {
    const g = planGroup('w-1', { image: 'img', command: ['sh'], args: ['-c', 'true'], env: { A: '1', S: 'plain' }, resources: { cpuMillicores: 250, memoryMiB: 300 } }, [{ strategy: 'env', name: 's', version: '1', envName: 'S', value: 'v' }], {}, config);
    assert.equal(g.osType, 'Linux');
    assert.equal(g.restartPolicy, 'Never');
    const c = g.containers[0]!;
    assert.deepEqual(c.command, ['sh', '-c', 'true']);
    assert.deepEqual(c.environmentVariables, [{ name: 'A', value: '1' }, { name: 'S', secureValue: 'v' }]);
    assert.deepEqual(c.resources.requests, { cpu: 0.25, memoryInGB: 0.3 });
  });

  it('refuses what ACI cannot honour instead of dropping it', () => {
    for (const spec of [{}, { image: 'x', args: ['a'] }, { image: 'x', workingDir: '/w' }, { image: 'x', user: '1000' }, { image: 'x', readOnlyRootFilesystem: true }]) {
      assert.throws(() => planGroup('w-1', spec, [], {}, config), (e: unknown) => isWorkerManagerError(e) && ['WM_ERR_VALIDATION', 'WM_ERR_COMPATIBILITY'].includes(e.code));
    }
    assert.throws(() => planGroup('w-1', { image: 'x' }, [{ strategy: 'file', name: 's', version: '1', path: 'p', value: 'v' }], {}, config), (e: unknown) => isWorkerManagerError(e) && e.code === 'WM_ERR_COMPATIBILITY');
  });
});

describe('toWorkerError', () => {
  const arm = (statusCode: number, code: string, message = 'm'): Error => Object.assign(new Error(message), { name: 'RestError', statusCode, code });
  it('maps ARM statuses and codes to contract codes, with the ARM code in details', () => {
    const cases: Array<[Error, string]> = [
      [arm(429, 'SubscriptionRequestsThrottled'), 'WM_ERR_RESOURCE_EXHAUSTED'],
      [arm(401, 'InvalidAuthenticationToken'), 'WM_ERR_AUTHENTICATION'],
      [arm(403, 'AuthorizationFailed'), 'WM_ERR_AUTHORIZATION'],
      [arm(404, 'ResourceNotFound'), 'WM_ERR_NOT_FOUND'],
      [arm(409, 'Conflict'), 'WM_ERR_CONFLICT'],
      [arm(400, 'InvalidContainerGroupName'), 'WM_ERR_VALIDATION'],
      [arm(409, 'ContainerGroupTransitioning'), 'WM_ERR_CONFLICT'],
      [arm(400, 'ContainerGroupQuotaReached'), 'WM_ERR_RESOURCE_EXHAUSTED'],
      [arm(503, 'ServiceUnavailable'), 'WM_ERR_RESOURCE_EXHAUSTED'],
      [arm(500, 'InternalServerError'), 'WM_ERR_NETWORK'],
      [Object.assign(new Error('connect ECONNREFUSED'), { name: 'RestError', code: 'REQUEST_SEND_ERROR' }), 'WM_ERR_NETWORK'],
      [Object.assign(new Error('invalid_client'), { name: 'AuthenticationRequiredError' }), 'WM_ERR_AUTHENTICATION'],
    ];
    for (const [error, code] of cases) assert.equal(toWorkerError(error, { operation: 'op' }).code, code, `${(error as { code?: string }).code ?? error.name}`);
    assert.equal(toWorkerError(arm(429, 'SubscriptionRequestsThrottled'), { operation: 'op' }).details?.['armCode'], 'SubscriptionRequestsThrottled');
  });

  it('scrubs the values the call carried from ARM messages, and keeps no cause', () => {
    const e = toWorkerError(arm(400, 'InvalidRequestContent', 'bad value super-secret-value here'), { operation: 'op', redact: ['super-secret-value'] });
    assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes('super-secret-value'));
    assert.equal(e.cause, undefined);
  });
});
