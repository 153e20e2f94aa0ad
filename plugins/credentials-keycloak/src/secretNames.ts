import { createHash } from 'node:crypto';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ResolvedClient } from './config.ts';

/** The two kinds of secret the plugin serves. */
export type SecretKind = 'token' | 'client-secret';

/** A parsed secret name with the served-client entry that allows it. */
export interface SecretName {
  name: string;
  kind: SecretKind;
  clientId: string;
  served: ResolvedClient;
}

/**
 * `token/<clientId>` or `client-secret/<clientId>` of a client the config serves (`client-secret/` only with
 * `rotate: true`); anything else is WM_ERR_SECRET_NOT_FOUND, saying why.
 */
export function parseSecretName(name: string, clients: readonly ResolvedClient[]): SecretName {
  const match = /^(token|client-secret)\/(.+)$/.exec(name);
  if (match === null) {
    throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${name}': names are token/<clientId> or client-secret/<clientId>`, { details: { name } });
  }
  const kind = match[1] as SecretKind;
  const clientId = match[2] as string;
  // An exact entry wins over a prefix, so one client of a family can have its own secret source.
  const served = clients.find((c) => !c.prefix && c.clientId === clientId) ?? clients.find((c) => c.prefix && clientId.startsWith(c.clientId) && clientId.length > c.clientId.length);
  if (served === undefined) {
    throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${name}': client '${clientId}' is not in this instance's clients`, { details: { name, clientId } });
  }
  if (kind === 'client-secret' && !served.rotate) {
    throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${name}': the entry of client '${clientId}' does not have rotate: true`, { details: { name, clientId } });
  }
  return { name, kind, clientId, served };
}

/**
 * The version id of a token or client secret: the first 16 hex digits of a SHA-256 over the client and the value.
 * Keycloak has no version ids; this one is stable across restarts and threads, needs no stored state, and tells
 * nothing about a high-entropy value (Keycloak generates 32 random letters and digits).
 */
export function fingerprint(kind: SecretKind, clientId: string, value: string): string {
  const digest = createHash('sha256').update(`${kind}\0${clientId}\0${value}`).digest('hex').slice(0, 16);
  return kind === 'token' ? `t-${digest}` : `s-${digest}`;
}

/** ISO time of epoch seconds or milliseconds. */
export const isoFromSeconds = (s: number): string => new Date(s * 1_000).toISOString();
export const isoFromMs = (ms: number): string => new Date(ms).toISOString();
