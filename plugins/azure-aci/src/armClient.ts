import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { ContainerInstanceManagementClient } from '@azure/arm-containerinstance';
import { ClientSecretCredential } from '@azure/identity';
import { egressAgent, readSecretSource, WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

/** The ARM client of one plugin thread, and the values its errors must never show. */
export interface ArmConnection {
  client: ContainerInstanceManagementClient;
  /** The client secret: scrubbed from every error message. */
  redact: string[];
  close(): void;
}

async function readCa(file: string, stateDir: string): Promise<string[]> {
  const where = path.resolve(stateDir, file);
  try {
    return [...rootCertificates, await readFile(where, 'utf8')];
  } catch (cause) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the CA file ${where} (caCertFile) cannot be read`, {
      details: { reason: 'ca-unreadable', file: where, errno: (cause as NodeJS.ErrnoException).code ?? null },
    });
  }
}

/**
 * Builds the credential and the ARM client. Both go through one agent: the SDK's `egressAgent`, which tunnels through
 * the host's egress proxy (HTTPS_PROXY) in the restricted tier and connects directly otherwise, and which carries the
 * extra CA of `caCertFile`. Retries (429 with Retry-After, 5xx, connection failures) are the SDK's own policies,
 * bounded by `retry`.
 */
export async function connectArm(config: ResolvedConfig, stateDir: string): Promise<ArmConnection> {
  const secret = await readSecretSource(config.clientSecret, 'Azure client secret', stateDir);
  const ca = config.caCertFile === undefined ? undefined : await readCa(config.caCertFile, stateDir);
  const agent = egressAgent({ keepAlive: true, ...(ca === undefined ? {} : { ca }) });
  const retryOptions = { maxRetries: config.retry.maxRetries, retryDelayInMs: config.retry.retryDelayMs, maxRetryDelayInMs: config.retry.maxRetryDelayMs };
  const credential = new ClientSecretCredential(config.tenantId, config.clientId, secret, {
    ...(config.authorityHost === undefined ? {} : { authorityHost: config.authorityHost, disableInstanceDiscovery: true }),
    agent,
    retryOptions,
  });
  const client = new ContainerInstanceManagementClient(credential, config.subscriptionId, {
    endpoint: config.endpoint,
    credentialScopes: [config.credentialScope],
    agent,
    retryOptions,
  });
  return { client, redact: [secret], close: () => agent.destroy() };
}
