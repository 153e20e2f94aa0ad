import type { KeycloakDouble } from '../doubles/keycloakAdmin.ts';
import { repoRoot } from './startTestHost.ts';

/** The credentials-keycloak entry of a host config's `plugins:` list (an item indented two spaces), run trusted. */
export const keycloakPluginYaml = `  - name: credentials-keycloak
    package: ${repoRoot}plugins/credentials-keycloak
    isolation: trusted
`;

/** What an instance of credentials-keycloak against a double is made of. */
export interface KeycloakInstanceOptions {
  /** Instance name. */
  name: string;
  /** The admin client, and the file holding its secret (never the YAML: docs/credentials-keycloak.md). */
  admin: { clientId: string; file: string };
  /** The served clients, as the plugin's config takes them. */
  clients: Array<{ clientId: string; rotate?: boolean; scope?: string }>;
  /** Any other config field (tokenSkewSeconds, requestTimeoutMs). */
  settings?: Record<string, unknown>;
}

/**
 * An instance of credentials-keycloak against `kc` for a host config's `instances:` list (an item indented two spaces),
 * over plain HTTP on loopback. The config is written as JSON, which YAML reads as a flow mapping; `${DIR}` in a path
 * is left for the host helpers to replace.
 */
export function keycloakInstanceYaml(kc: Pick<KeycloakDouble, 'baseUrl' | 'realm'>, options: KeycloakInstanceOptions): string {
  const config = {
    baseUrl: kc.baseUrl,
    realm: kc.realm,
    allowHttp: true,
    ...options.settings,
    admin: { clientId: options.admin.clientId, secret: { file: options.admin.file } },
    clients: options.clients,
  };
  return `  - name: ${options.name}
    plugin: credentials-keycloak
    config: ${JSON.stringify(config)}
`;
}
