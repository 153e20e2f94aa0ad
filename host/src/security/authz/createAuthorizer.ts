import path from 'node:path';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Authorizer } from './Authorizer.ts';
import type { AuthorizationSettings } from './authzSettings.ts';
import type { AvpClientConfig } from './adapters/AvpAuthorizer.ts';
import { CedarAuthorizer } from './adapters/CedarAuthorizer.ts';
import type { AvpSettings } from './authzSettings.ts';
import { denyWithError } from './failClosed.ts';
import { DEFAULT_POLICIES_DIR } from './loadCedarPolicies.ts';

/** What an authorizer needs besides its settings. */
export interface AuthorizerDeps {
  logger?: Logger;
  /** Folder of the config file: a relative `cedar.policiesDir` resolves against it. */
  configDir: string;
  /** Extra AWS SDK client config for the avp adapter (tests give credentials); never from the config file. */
  avpClientConfig?: AvpClientConfig;
}

/**
 * The authorizer the settings ask for: the embedded Cedar engine (default; the shipped policies when no folder is
 * given) or AWS Verified Permissions. Nothing is read until `start()`, which is where an invalid policy set fails.
 */
export function createAuthorizer(settings: AuthorizationSettings, deps: AuthorizerDeps): Authorizer {
  const logger = deps.logger === undefined ? {} : { logger: deps.logger };
  if (settings.adapter === 'avp') {
    if (settings.avp === undefined) {
      throw hostError('HOST_ERR_AUTHZ_CONFIG_INVALID', 'security.authorization.adapter is avp but security.authorization.avp (policyStoreId, region) is missing');
    }
    return lazyAvp(settings.avp, { ...logger, ...(deps.avpClientConfig === undefined ? {} : { clientConfig: deps.avpClientConfig }) });
  }
  const policiesDir = settings.cedar.policiesDir === undefined ? DEFAULT_POLICIES_DIR : path.resolve(deps.configDir, settings.cedar.policiesDir);
  return new CedarAuthorizer({ policiesDir, schemaFile: settings.cedar.schemaFile }, logger);
}

/** The AVP adapter, with the AWS SDK (a few hundred ms to load) imported at start only by hosts that use it. */
function lazyAvp(settings: AvpSettings, deps: { logger?: Logger; clientConfig?: AvpClientConfig }): Authorizer {
  let inner: Authorizer | undefined;
  return {
    adapter: 'avp',
    async start() {
      if (inner === undefined) {
        const { AvpAuthorizer } = await import('./adapters/AvpAuthorizer.ts');
        inner = new AvpAuthorizer(settings, deps);
      }
      await inner.start();
    },
    authorize: async (request) => (inner === undefined ? denyWithError('the avp authorizer is not started') : inner.authorize(request)),
    stop: async () => inner?.stop(),
  };
}
