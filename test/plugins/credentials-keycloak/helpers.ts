import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as oidc from 'openid-client';
import plugin from '@worker-manager/plugin-credentials-keycloak';
import { isWorkerManagerError, type WorkerManagerError } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { startKeycloakDouble, type KeycloakClientSeed, type KeycloakDouble, type KeycloakDoubleOptions } from '../../doubles/keycloakAdmin.ts';

/** The admin client with the least privilege rotation needs, one that may only read, and one with no admin roles. */
export const ROTATOR = 'wm-rotator';
export const VIEWER = 'wm-viewer';
export const NOBODY = 'wm-nobody';
/** Service accounts whose tokens and secrets the plugin serves. */
export const RUNNER = 'ci-runner';
export const DEPLOY = 'ci-deploy';

export const DEFAULT_CLIENTS: KeycloakClientSeed[] = [
  { clientId: ROTATOR, realmManagementRoles: ['manage-clients'] },
  { clientId: VIEWER, realmManagementRoles: ['view-clients'] },
  { clientId: NOBODY },
  { clientId: RUNNER },
  { clientId: DEPLOY },
  { clientId: 'ci-disabled', serviceAccountsEnabled: false },
];

/** A realm with the default clients (more may be added), closed by `t.after` in the caller. */
export async function startRealm(options: Partial<KeycloakDoubleOptions> = {}): Promise<KeycloakDouble> {
  return startKeycloakDouble({ clients: DEFAULT_CLIENTS, ...options });
}

export interface KeycloakSession {
  harness: PluginHarness<'credentials'>;
  dir: string;
  /** Writes (or replaces) a client secret file in the session folder and returns its path. */
  secretFile(name: string, value: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * The plugin in the harness against `kc`, with the admin client's secret in a file. `config` is merged over a config
 * that serves RUNNER and DEPLOY (tokens with secrets from the admin API, client secrets rotatable).
 */
export async function startPlugin(
  kc: KeycloakDouble,
  config: Record<string, unknown> = {},
  options: { admin?: string | undefined; stateDir?: string; definition?: typeof plugin } = {},
): Promise<KeycloakSession> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-keycloak-'));
  const secretFile = async (name: string, value: string): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, `${value}\n`, { mode: 0o600 });
    return file;
  };
  const admin = options.admin ?? ROTATOR;
  const adminFile = await secretFile('admin-secret', kc.client(admin).secret);
  const harness = await createPluginHarness(options.definition ?? plugin, {
    stateDir: options.stateDir ?? path.join(dir, 'state'),
    config: {
      baseUrl: kc.baseUrl,
      realm: kc.realm,
      allowHttp: true,
      tokenSkewSeconds: 2,
      requestTimeoutMs: 5_000,
      admin: { clientId: admin, secret: { file: adminFile } },
      clients: [
        { clientId: RUNNER, rotate: true },
        { clientId: DEPLOY, rotate: true },
      ],
      ...config,
    },
  });
  return {
    harness,
    dir,
    secretFile,
    async close() {
      await harness.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A client credentials grant straight at the double through openid-client, as a worker holding `secret` would make. */
export async function grantWith(kc: KeycloakDouble, clientId: string, secret: string): Promise<string> {
  const config = new oidc.Configuration({ issuer: kc.issuer, token_endpoint: `${kc.issuer}/protocol/openid-connect/token` }, clientId, undefined, oidc.ClientSecretPost(secret));
  oidc.allowInsecureRequests(config);
  return (await oidc.clientCredentialsGrant(config)).access_token;
}

/** The OAuth error a direct grant with `secret` gets, or 'ok' when it succeeds. */
export async function grantOutcome(kc: KeycloakDouble, clientId: string, secret: string): Promise<string> {
  try {
    await grantWith(kc, clientId, secret);
    return 'ok';
  } catch (error) {
    if (error instanceof oidc.ResponseBodyError) return error.error;
    throw error;
  }
}

/** The claims of a JWT (no verification: the double signed it, the test only reads who it is for). */
export function claims(token: string): Record<string, unknown> {
  const payload = token.split('.')[1];
  assert.ok(payload !== undefined, 'a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The call fails with a WorkerManagerError of `code`; returns it. */
export async function expectCode(promise: Promise<unknown>, code: string, what: string): Promise<WorkerManagerError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  }, `${what}: expected ${code}, but the call succeeded`);
  assert.ok(isWorkerManagerError(caught), `${what}: expected a WorkerManagerError, got ${String(caught)}`);
  assert.equal(caught.code, code, `${what}: expected ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}

/** Everything an error shows, as it crosses the boundary. */
export function errorText(error: unknown): string {
  if (isWorkerManagerError(error)) return `${JSON.stringify(error.toJSON())}\n${error.stack ?? ''}`;
  return error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
}

/** No canary (a secret or token, or a 12-character piece of one) in `text`. */
export function assertNoCanary(text: string, canaries: Iterable<string>, where: string): void {
  for (const canary of canaries) {
    for (const piece of [canary, canary.slice(0, 12), canary.slice(-12)]) {
      assert.ok(!text.includes(piece), `${where} shows (part of) a secret value`);
    }
  }
}

/** Every secret the realm holds or held in `kc` (current and rotated) plus `extra` values (tokens read). */
export function realmSecrets(kc: KeycloakDouble, clientIds: readonly string[], extra: Iterable<string> = []): string[] {
  const out = [...extra];
  for (const id of clientIds) {
    const c = kc.client(id);
    out.push(c.secret);
    if (c.rotated !== undefined) out.push(c.rotated.secret);
  }
  return out;
}
