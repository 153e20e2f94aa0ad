import type { JWTPayload } from 'jose';
import type { Principal } from '../Principal.ts';
import { authFailure } from './authFailure.ts';

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

/** Reads a claim by dotted path (`attributes.tenant`), for tenant claims Keycloak mappers nest. */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let at: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

/**
 * Maps verified Keycloak access-token claims to a Principal: `sub` is the id; `azp` the client; a token of a service
 * account (Keycloak gives its user the `service-account-<client>` username, and client credentials tokens carry
 * `client_id`/`clientId`) is a `service` principal; roles are `realm_access.roles` plus `resource_access.<client>.roles`
 * as `client:role`; scopes come from the space-separated `scope`.
 */
export function keycloakPrincipal(payload: JWTPayload, tenantClaim: string): Principal {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw authFailure('claims', 'the token has no subject (sub)');
  const azp = typeof payload['azp'] === 'string' ? payload['azp'] : typeof payload['client_id'] === 'string' ? payload['client_id'] : undefined;
  const username = typeof payload['preferred_username'] === 'string' ? payload['preferred_username'] : '';
  const service = username.startsWith('service-account-') || typeof payload['client_id'] === 'string' || typeof payload['clientId'] === 'string';
  const realmAccess = payload['realm_access'] as { roles?: unknown } | undefined;
  const roles = strings(realmAccess?.roles);
  const resourceAccess = payload['resource_access'];
  if (typeof resourceAccess === 'object' && resourceAccess !== null) {
    for (const [client, access] of Object.entries(resourceAccess as Record<string, { roles?: unknown } | null>)) {
      for (const role of strings(access?.roles)) roles.push(`${client}:${role}`);
    }
  }
  const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
  const tenant = claimAt(payload, tenantClaim);
  return {
    kind: service ? 'service' : 'user',
    id: payload.sub,
    ...(azp === undefined ? {} : { clientId: azp }),
    ...(typeof tenant === 'string' && tenant.length > 0 ? { tenant } : {}),
    roles: [...new Set(roles)],
    scopes: scope.split(' ').filter((s) => s.length > 0),
    source: 'oidc',
  };
}
