import { readFile } from 'node:fs/promises';
import type { Host } from '../../host/src/Host.ts';

/**
 * `Authorization` header of the local admin token a started host (authentication mode local, the default) wrote to
 * `<stateDir>/admin.token`: what tests send to a host's API.
 */
export async function adminAuthorization(host: Host): Promise<{ authorization: string }> {
  const file = host.adminTokenFile;
  if (file === undefined) throw new Error('the host does not use the local admin token (security.authentication.mode is oidc)');
  return { authorization: `Bearer ${(await readFile(file, 'utf8')).trim()}` };
}
