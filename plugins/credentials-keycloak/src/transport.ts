import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { egressAgent, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { agentFetch, type HttpFetch } from './agentFetch.ts';
import type { ResolvedConfig } from './config.ts';

/**
 * How the plugin reaches Keycloak. Node's own fetch by default; for an https baseUrl with an egress proxy in
 * `HTTPS_PROXY` (the restricted tier sets it for an instance with `egress:`) or a `caFile`, `node:https` through the
 * SDK's egressAgent, which tunnels with CONNECT and checks the certificate end to end against the CA given.
 */
export async function transportFor(config: ResolvedConfig, stateDir: string): Promise<{ fetch: HttpFetch; close(): void }> {
  const proxy = process.env['HTTPS_PROXY'] ?? process.env['https_proxy'];
  const ca = config.caFile === undefined ? undefined : await readCa(path.resolve(stateDir, config.caFile));
  const viaAgent = config.baseUrl.startsWith('https://') && (ca !== undefined || (proxy !== undefined && proxy !== ''));
  if (!viaAgent) return { fetch: (url, init) => fetch(url, init), close: () => {} };
  const agent = egressAgent({ keepAlive: true, ...(ca === undefined ? {} : { ca }) });
  return { fetch: agentFetch(agent), close: () => agent.destroy() };
}

async function readCa(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the caFile ${file} cannot be read`, {
      details: { reason: 'bad-config', field: 'caFile', file, errno: (error as NodeJS.ErrnoException).code ?? null },
    });
  }
}
