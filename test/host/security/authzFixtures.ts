/** Shared pieces of the authorization tests: principals, requests and policy folders on disk. */
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuthzContext, AuthzRequest, AuthzResource, Action } from '../../../host/src/security/authz/Authorizer.ts';
import type { Principal } from '../../../host/src/security/Principal.ts';

export const policiesDir = fileURLToPath(new URL('../../../config/policies/', import.meta.url));
export const examplesDir = path.join(policiesDir, 'examples');
export const schemaFile = path.join(policiesDir, 'schema.cedarschema');

/** An OIDC principal with the given fields. */
export function principal(fields: Partial<Principal> = {}): Principal {
  return { kind: 'user', id: 'alice', roles: [], scopes: [], source: 'oidc', ...fields };
}

export function request(p: Principal, action: Action, resource: AuthzResource, context: Partial<AuthzContext> = {}): AuthzRequest {
  return { principal: p, action, resource, context: { hourOfDay: 12, ...context } };
}

/**
 * A temporary policy folder holding the shipped schema and the given files: a name ending in `.cedar` copied from
 * `config/policies` (or its `examples/`), or `{ name: text }` written as is.
 */
export async function policyFolder(files: Array<string | Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-policies-'));
  await copyFile(schemaFile, path.join(dir, 'schema.cedarschema'));
  for (const f of files) {
    if (typeof f === 'string') {
      await copyFile(path.join(policiesDir, f), path.join(dir, path.basename(f)));
    } else {
      for (const [name, text] of Object.entries(f)) await writeFile(path.join(dir, name), text);
    }
  }
  return dir;
}
