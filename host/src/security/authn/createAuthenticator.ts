import { isIP } from 'node:net';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Principal } from '../Principal.ts';
import type { Authenticator } from './Authenticator.ts';
import type { AuthenticationSettings, ServiceIdentitySettings } from './authnSettings.ts';
import { LocalAdminAuthenticator } from './LocalAdminAuthenticator.ts';
import { OidcAuthenticator } from './OidcAuthenticator.ts';

/** The authenticator the settings ask for; oidc mode without an `oidc` block is HOST_ERR_AUTH_CONFIG_INVALID. */
export function createAuthenticator(settings: AuthenticationSettings, deps: { stateDir: string; logger?: Logger }): Authenticator {
  if (settings.mode === 'local') return new LocalAdminAuthenticator(deps);
  if (settings.oidc === undefined) {
    throw hostError('HOST_ERR_AUTH_CONFIG_INVALID', 'security.authentication.mode is oidc but security.authentication.oidc (issuer, audience) is missing');
  }
  return new OidcAuthenticator(settings.oidc, deps.logger === undefined ? {} : { logger: deps.logger });
}

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, an IPv4-mapped loopback, or `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  const v4 = bare.toLowerCase().startsWith('::ffff:') ? bare.slice(7) : bare;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(bare) === 6 && /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(bare);
}

/**
 * Refuses (HOST_ERR_AUTH_INSECURE_BIND) an API listening beyond this machine when the only credential is the local
 * admin token: that token is meant for the machine's own user, and `0.0.0.0` would offer it to the network. The error
 * names the address as `shownHost` (its `${...}` source text when it came from the environment).
 */
export function assertSafeBind(apiHost: string, settings: Pick<AuthenticationSettings, 'mode'>, shownHost: string = apiHost): void {
  if (settings.mode === 'local' && !isLoopbackHost(apiHost)) {
    throw hostError('HOST_ERR_AUTH_INSECURE_BIND', `api.host ${shownHost} is not a loopback address and security.authentication.mode is local; listen on 127.0.0.1 or configure oidc`, {
      details: { host: shownHost, mode: settings.mode },
    });
  }
}

/**
 * Whether `/metrics` needs a token: as `protectMetrics` says, or, when it says nothing, outside loopback. Decided by the
 * address the API binds, not by where a request comes from: on `0.0.0.0` a scrape over 127.0.0.1 needs a token too.
 */
export function metricsNeedAuthentication(apiHost: string, settings: Pick<AuthenticationSettings, 'protectMetrics'>): boolean {
  return settings.protectMetrics ?? !isLoopbackHost(apiHost);
}

/** The host's own identity (internal work, token-less bus commands when enabled). */
export function hostPrincipal(settings: ServiceIdentitySettings, hostId: string): Principal {
  return {
    kind: 'service',
    id: settings.id ?? `host:${hostId}`,
    ...(settings.tenant === undefined ? {} : { tenant: settings.tenant }),
    roles: [...settings.roles],
    scopes: [],
    source: 'host',
  };
}
