import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import plugin from '@worker-manager/plugin-credentials-vault';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { VaultDouble, type PolicyRule } from '../../doubles/vault.ts';

/** The least-privilege policy of docs/credentials-vault.md, for mount `secret` and a path prefix. */
export function pluginPolicy(prefix: string, mount = 'secret'): PolicyRule[] {
  return [
    { path: `${mount}/data/${prefix}/*`, capabilities: ['create', 'read', 'update'] },
    { path: `${mount}/metadata/${prefix}/*`, capabilities: ['create', 'read', 'update'] },
    { path: `${mount}/destroy/${prefix}/*`, capabilities: ['update'] },
    { path: `${mount}/undelete/${prefix}/*`, capabilities: ['update'] },
  ];
}

/**
 * The transit policy of plugins/credentials-vault/README.md for these keys, path by path (no globs: Vault ranks a glob
 * that starts later above a `+`, which would hide the rotate rule): encrypt (with `create`, encrypt also makes a key
 * that does not exist yet), decrypt, rewrap, rotate, and read of the key (only an old Vault's rotation needs it).
 */
export function transitPolicy(keys: string[], mount = 'transit', options: { create?: boolean } = {}): PolicyRule[] {
  return keys.flatMap((key) => [
    { path: `${mount}/encrypt/${key}`, capabilities: options.create === true ? ['create', 'update'] : ['update'] },
    { path: `${mount}/decrypt/${key}`, capabilities: ['update'] },
    { path: `${mount}/rewrap/${key}`, capabilities: ['update'] },
    { path: `${mount}/keys/${key}/rotate`, capabilities: ['update'] },
    { path: `${mount}/keys/${key}`, capabilities: ['read'] },
  ] satisfies PolicyRule[]);
}

/** The lease policy of plugins/credentials-vault/README.md: issue credentials of `mount`'s roles, revoke their leases (renewal is in `default`). */
export function leasePolicy(mount = 'database'): PolicyRule[] {
  return [
    { path: `${mount}/creds/*`, capabilities: ['read'] },
    { path: 'sys/leases/revoke', capabilities: ['update'] },
  ];
}

/** A Vault double closed after the test, with policy `wm` granting the plugin prefix `wm`. */
export async function startVault(t: TestContext): Promise<VaultDouble> {
  const vault = await VaultDouble.start();
  t.after(() => vault.close());
  vault.setPolicy('wm', pluginPolicy('wm'));
  return vault;
}

/** A temporary folder removed after the test. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-vault-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `content` to `<dir>/<name>` and returns the path. */
export async function secretFile(dir: string, name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `${content}\n`, { mode: 0o600 });
  return file;
}

/**
 * A harness logging in with a fresh `wm` token from a file (unless `config.auth` says otherwise), closed after the test.
 * Harnesses given the same `stateDir` act as threads (or successive runs) of one instance.
 */
export async function harness(t: TestContext, vault: VaultDouble, config: Record<string, unknown> = {}, options: { stateDir?: string } = {}): Promise<PluginHarness<'credentials'>> {
  let auth = config['auth'];
  if (auth === undefined) {
    const dir = await tempDir(t);
    auth = { method: 'token', token: { file: await secretFile(dir, 'token', vault.createToken({ policies: ['wm'] })) } };
  }
  const h = await createPluginHarness(plugin, { config: { address: vault.address, pathPrefix: 'wm', readRetries: 1, ...config, auth }, ...(options.stateDir === undefined ? {} : { stateDir: options.stateDir }) });
  t.after(() => h.close());
  return h;
}

/** A token file for `policies`, in a temporary folder: the `auth` of a harness config. */
export async function tokenAuth(t: TestContext, vault: VaultDouble, policies: string[]): Promise<{ method: 'token'; token: { file: string } }> {
  return { method: 'token', token: { file: await secretFile(await tempDir(t), 'token', vault.createToken({ policies })) } };
}

/** Calls `fn` and returns the error it rejects with; fails when it resolves. */
export async function rejection(fn: () => Promise<unknown>): Promise<{ code: string; message: string; transient?: boolean; details?: Record<string, unknown> }> {
  try {
    await fn();
  } catch (error) {
    return error as { code: string; message: string; transient?: boolean; details?: Record<string, unknown> };
  }
  throw new Error('expected a rejection');
}

/** An RSA key pair and a signer of RS256 JWTs, as an identity provider or a Kubernetes cluster would issue them. */
export function jwtIssuer(): { publicKeyPem: string; sign(claims: Record<string, unknown>): string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    sign(claims) {
      const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
      return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    },
  };
}

/** Everything a caller can see of an error or a log, as text, to look for a canary in. */
export function visible(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Error ? { message: v.message, ...(v as unknown as Record<string, unknown>) } : v));
}
