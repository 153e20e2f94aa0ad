import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import { ClientSecretCredential } from '@azure/identity';
import type { RuntimeSpec } from '@worker-manager/plugin-sdk';
import { startAzureAciDouble, type AzureAciDouble } from '../../doubles/azureAci.ts';

export const IMAGE = 'local/busybox:latest';
export const SUBSCRIPTION = '00000000-0000-0000-0000-00000000a0c1';
export const TENANT = '11111111-2222-3333-4444-555555555555';
export const CLIENT_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
export const RESOURCE_GROUP = 'wm-workers';
export const LOCATION = 'westeurope';

/** A fresh client secret per run: tests search errors and logs for it. */
export const newClientSecret = (): string => `cs~${randomBytes(18).toString('base64url')}`;

/** A double with one subscription, one resource group and one app registration. */
export function startDouble(clientSecret: string, extra: { provisioningDelayMs?: number; tokenTtlSeconds?: number } = {}): Promise<AzureAciDouble> {
  return startAzureAciDouble({
    subscriptionId: SUBSCRIPTION,
    tenantId: TENANT,
    resourceGroups: [RESOURCE_GROUP],
    clients: [{ tenantId: TENANT, clientId: CLIENT_ID, clientSecret }],
    ...extra,
  });
}

/** The real Azure SDK client, pointed at the double and trusting its certificate (and nothing else disabled). */
export function sdkClient(double: AzureAciDouble, clientSecret: string, retry: { maxRetries?: number } = {}): ContainerInstanceManagementClient {
  const agent = new Agent({ ca: double.ca, keepAlive: true });
  const credential = new ClientSecretCredential(TENANT, CLIENT_ID, clientSecret, { authorityHost: double.url, disableInstanceDiscovery: true, agent });
  return new ContainerInstanceManagementClient(credential, SUBSCRIPTION, {
    endpoint: double.url,
    credentialScopes: [`${double.url}/.default`],
    agent,
    retryOptions: { maxRetries: retry.maxRetries ?? 3, retryDelayInMs: 50, maxRetryDelayInMs: 2_000 },
  });
}

/** Files a plugin instance reads (its client secret and the double's CA), in a temp folder removed by `dispose`. */
export interface PluginFiles {
  dir: string;
  dispose(): void;
}

export function writePluginFiles(double: AzureAciDouble, clientSecret: string): PluginFiles {
  const dir = mkdtempSync(path.join(tmpdir(), 'aci-plugin-'));
  writeFileSync(path.join(dir, 'client-secret'), `${clientSecret}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'double-ca.pem'), double.ca);
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The plugin's config for the double: the same fields an operator writes for Azure, with the double's URLs. */
export function pluginConfig(double: AzureAciDouble, files: PluginFiles, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    subscriptionId: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    location: LOCATION,
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: { file: path.join(files.dir, 'client-secret') },
    authorityHost: double.url,
    endpoint: double.url,
    caCertFile: path.join(files.dir, 'double-ca.pem'),
    cpu: 0.5,
    memoryInGB: 0.5,
    pollIntervalMs: 250,
    retry: { maxRetries: 3, retryDelayMs: 50, maxRetryDelayMs: 2_000 },
    ...extra,
  };
}

/** A fresh host id: every test owns what carries it. */
export const newHostId = (tag: string): string => `t-aci-${tag}-${randomBytes(3).toString('hex')}`;

/** A worker that prints `marker`, then keeps running (600 s: longer than a test on a loaded machine). */
export const longSpec = (marker: string): RuntimeSpec => ({ image: IMAGE, command: ['sh', '-c', `echo ${marker}; exec sleep 600`] });
