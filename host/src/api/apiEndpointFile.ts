import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';

/**
 * `<stateDir>/api-endpoint.json`: where a running host's API listens and which file holds its local admin token, so
 * that `wm` on the same machine finds the host without flags (the port may be one the OS picked). Written once the API
 * listens, removed at stop. It holds a path, never the token.
 */
export const ApiEndpoint = Type.Object(
  {
    url: Type.String({ pattern: '^https?://[^\\s]+$', description: 'base URL the API listens on' }),
    tokenFile: Type.Optional(Type.String({ minLength: 1, description: 'absolute path of the local admin token file (absent in oidc mode)' })),
    pid: Type.Integer({ minimum: 1, description: 'pid of the host that wrote it' }),
  },
  { additionalProperties: false },
);
/** A host's API endpoint as written for the CLI. */
export type ApiEndpoint = Static<typeof ApiEndpoint>;

const checkEndpoint = Compile(ApiEndpoint);

/** Where a host with this state dir writes its endpoint. */
export function apiEndpointPath(stateDir: string): string {
  return path.join(stateDir, 'api-endpoint.json');
}

/** Writes the endpoint (mode 0600, like the token file beside it). */
export async function writeApiEndpoint(stateDir: string, endpoint: ApiEndpoint): Promise<void> {
  await writeFile(apiEndpointPath(stateDir), `${JSON.stringify(endpoint)}\n`, { mode: 0o600 });
}

/** Removes the endpoint at stop; one already gone is fine. */
export async function removeApiEndpoint(stateDir: string): Promise<void> {
  await rm(apiEndpointPath(stateDir), { force: true });
}

/**
 * The endpoint of the host that runs on this state dir, or undefined when there is none: no file, an unreadable or
 * malformed one, or one left by a host that is no longer running (killed before it could remove it).
 */
export async function readApiEndpoint(stateDir: string): Promise<ApiEndpoint | undefined> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(apiEndpointPath(stateDir), 'utf8'));
  } catch {
    return undefined;
  }
  if (!checkEndpoint.Check(data)) return undefined;
  try {
    process.kill(data.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to another user, so a host may well run there.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return data;
}
