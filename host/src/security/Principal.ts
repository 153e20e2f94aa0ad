/**
 * The identified caller of an operation, after authentication. Built from a verified token (Keycloak claims), from the
 * local admin token of the embedded default, or from the host's own service identity for internal work (rotation
 * timers). It never holds the token itself.
 */
export interface Principal {
  /** `user` for people, `service` for service accounts (Keycloak `azp` client with client credentials). */
  kind: 'user' | 'service';
  /** Token subject (`sub`), or `local-admin` / `host:<id>` for the embedded and internal identities. */
  id: string;
  /** Client the token was issued to (`azp`), when any. */
  clientId?: string;
  /** Tenant from the configured tenant claim; absent when the token has none. */
  tenant?: string;
  /** Realm roles plus client roles (as `client:role`). */
  roles: string[];
  /** Granted OAuth scopes. */
  scopes: string[];
  /** Where the identity came from. */
  source: 'oidc' | 'local-admin' | 'host' | 'anonymous';
}
