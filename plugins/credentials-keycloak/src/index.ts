import { definePlugin, WorkerManagerError } from '@worker-manager/plugin-sdk';
import { CredentialsKeycloakConfig, resolveConfig, type ResolvedConfig } from './config.ts';
import { KeycloakCredentials } from './KeycloakCredentials.ts';
import { RevokedVersions } from './RevokedVersions.ts';
import { transportFor } from './transport.ts';

/** Config rules the schema cannot express; each names the field to fix. */
function checkConfig(config: ResolvedConfig, instance: string): void {
  const bad = (message: string, field: string): never => {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `credentials-keycloak instance '${instance}': ${message}`, { details: { reason: 'bad-config', field, instance } });
  };
  if (config.baseUrl.startsWith('http://') && !config.allowHttp) bad('baseUrl is http://: tokens and client secrets would cross the network in clear (set allowHttp: true for a loopback test realm only)', 'baseUrl');
  config.clients.forEach((c, i) => {
    if (config.admin === undefined && c.secret === 'admin') bad(`clients[${i}] (${c.clientId}${c.prefix ? '*' : ''}) reads its secret through the admin API, but there is no admin block: give it secret: {file} or {env}, or add admin`, `clients/${i}/secret`);
    if (config.admin === undefined && c.rotate) bad(`clients[${i}] has rotate: true, which needs the admin block`, `clients/${i}/rotate`);
    if (c.prefix && c.secret !== 'admin') bad(`clients[${i}] is a prefix (${c.clientId}*): its clients' secrets can only come from the admin API`, `clients/${i}/secret`);
  });
}

/**
 * Keycloak as a credential backend: `token/<clientId>` is an access token of that client's service account (client
 * credentials grant through openid-client, cached and refreshed before it expires), `client-secret/<clientId>` is the
 * client secret, rotated through the admin REST API under Keycloak's secret-rotation policy. See README.md and
 * docs/credentials-keycloak.md.
 */
export default definePlugin({
  id: 'credentials-keycloak',
  version: '0.1.0',
  kind: 'credentials',
  hostApi: '^2.0.0',
  description: 'Keycloak: service-account access tokens, and client secrets rotated through the admin API (live at once, previous kept for a grace period).',
  capabilities: {
    'secret.read': '1.0.0',
    'secret.rotate': '1.0.0',
    'secret.revoke': '1.0.0',
    'secret.rotate.immediate': '1.0.0',
  },
  configSchema: CredentialsKeycloakConfig,
  async setup(ctx) {
    const config = resolveConfig(ctx.config);
    checkConfig(config, ctx.instance);
    const revoked = await RevokedVersions.open(ctx.stateDir, config.stateFile);
    const transport = await transportFor(config, ctx.stateDir);
    const handlers = new KeycloakCredentials(config, { stateDir: ctx.stateDir, logger: ctx.logger, signal: ctx.signal, revoked, fetch: transport.fetch }).handlers();
    return { ...handlers, close: () => transport.close() };
  },
});
